// Test FHIR R4 server: Medplum's FhirRouter over CheckedRepository, served by node:http.
//
//   node server.mjs --port 8103 [--host 127.0.0.1] [--data snapshot.json] [--token SECRET]
//
// FHIR base: http://HOST:PORT/fhir/R4 ; liveness: GET /healthz. With --data the store is
// written on SIGTERM/SIGINT and read back at start, so a stop/start keeps every resource.
import fs from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { getStatus, normalizeOperationOutcome, OperationOutcomeError, badRequest, unauthorized } from '@medplum/core';
import { FhirRouter } from '@medplum/fhir-router';
import { CheckedRepository } from './repository.mjs';
import { loadDefinitions } from './schema.mjs';
import { normaliseQuery } from './search.mjs';

const BASE = '/fhir/R4';
const FHIR_JSON = 'application/fhir+json; charset=utf-8';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.FHIR_PORT ?? '0' },
    host: { type: 'string', default: '127.0.0.1' },
    data: { type: 'string' },
    token: { type: 'string', default: process.env.FHIR_TOKEN ?? '' },
  },
});

loadDefinitions();
const router = new FhirRouter();
let repo;

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': FHIR_JSON, 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function capabilityStatement() {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: ['json'],
    software: { name: 'radflow test FHIR server (Medplum fhir-router, in memory)' },
    rest: [{ mode: 'server' }],
  };
}

// Rebuilds the router URL with a query the in-memory engine matches correctly.
function routedUrl(path, searchParams) {
  const resourceType = path.split('/').filter(Boolean)[0];
  const pairs = [...searchParams.entries()];
  if (!pairs.length || !/^[A-Z]/.test(resourceType ?? '')) return path;
  return `${path}?${new URLSearchParams(normaliseQuery(resourceType, pairs))}`;
}

async function handleFhir(req, res, url, path) {
  if (args.token && req.headers.authorization !== `Bearer ${args.token}`) {
    send(res, 401, unauthorized, { 'www-authenticate': 'Bearer' });
    return;
  }
  if (req.method === 'GET' && path === '/metadata') {
    send(res, 200, capabilityStatement());
    return;
  }
  const raw = await readBody(req);
  let body;
  try {
    body = raw ? JSON.parse(raw) : undefined;
  } catch (err) {
    send(res, 400, badRequest(`Invalid JSON: ${err.message}`));
    return;
  }
  const headers = { ...req.headers };
  const [resourceType] = path.split('/').filter(Boolean);
  if (headers['if-none-exist']) {
    const pairs = [...new URLSearchParams(headers['if-none-exist']).entries()];
    headers['if-none-exist'] = new URLSearchParams(normaliseQuery(resourceType, pairs)).toString();
  }
  const fhirRequest = {
    method: req.method,
    url: routedUrl(path, url.searchParams),
    pathname: '',
    params: {},
    query: {},
    body,
    headers,
  };
  const [outcome, resource] = await router.handleRequest(fhirRequest, repo);
  const status = getStatus(outcome);
  if (!resource) {
    send(res, status, outcome);
    return;
  }
  const extra = {};
  const version = resource.meta?.versionId;
  if (version && resource.resourceType !== 'Bundle') {
    extra.etag = `W/"${version}"`;
    extra['last-modified'] = new Date(resource.meta.lastUpdated).toUTCString();
    if (status === 201) {
      extra.location = `${url.origin}${BASE}/${resource.resourceType}/${resource.id}/_history/${version}`;
    }
  }
  send(res, status, resource, extra);
}

async function handle(req, res) {
  const url = new URL(req.url, `http://${req.headers.host ?? 'localhost'}`);
  try {
    if (url.pathname === '/healthz') {
      send(res, 200, { status: 'ok' });
    } else if (url.pathname === BASE || url.pathname.startsWith(BASE + '/')) {
      await handleFhir(req, res, url, url.pathname.slice(BASE.length) || '/');
    } else {
      send(res, 404, badRequest(`No FHIR base here: use ${BASE}`));
    }
  } catch (err) {
    // Our own checks throw OperationOutcomeError (4xx); anything else is a server bug -> 500.
    const outcome = err instanceof OperationOutcomeError ? normalizeOperationOutcome(err) : null;
    if (outcome) {
      send(res, getStatus(outcome), outcome);
    } else {
      console.error(err);
      send(res, 500, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: String(err) }] });
    }
  }
}

function saveSnapshot() {
  if (!args.data) return;
  const tmp = `${args.data}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(repo.snapshot()));
  fs.renameSync(tmp, args.data);
}

async function main() {
  const port = Number(args.port);
  repo = new CheckedRepository({
    bases: [`http://${args.host}:${port}${BASE}`, `http://localhost:${port}${BASE}`, `http://127.0.0.1:${port}${BASE}`],
  });
  if (args.data && fs.existsSync(args.data)) {
    await repo.restore(JSON.parse(fs.readFileSync(args.data, 'utf8')));
  }
  const server = http.createServer((req, res) => void handle(req, res));
  server.keepAliveTimeout = 5000;
  const stop = () => {
    server.close();
    server.closeAllConnections();
    saveSnapshot();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  server.listen(port, args.host, () => {
    // The fixture waits for this line (and /healthz); with --port 0 it also gives the port.
    console.log(`listening http://${args.host}:${server.address().port}${BASE}`);
  });
}

await main();
