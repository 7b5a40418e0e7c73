"""SOR-TACE CDS Hooks service: recognizes recurrent BCLC-B HCC after R0 hepatectomy with MVI and shows the
evidence for sorafenib plus on-demand TACE (JAMA Oncol 2024, PMID 38900435).

The application factory is ``cds.app.create_app``; ``python -m cds`` runs the command line.
"""
