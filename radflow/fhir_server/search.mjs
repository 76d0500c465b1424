// Search checks for the in-memory engine: MemoryRepository answers an unsupported parameter,
// modifier or _include with a silently empty or unfiltered Bundle, which would make a test pass
// for the wrong reason. Here they are 400 errors, and reference values are normalised to the
// only form it matches (Type/id).
import { badRequest, globalSchema, OperationOutcomeError } from '@medplum/core';

// What core's matcher really implements, per search parameter type (match.ts): other
// modifiers are parsed but then treated as a plain match.
const OPERATORS = {
  token: new Set(['eq', 'ne', 'not', 'missing', 'present']),
  reference: new Set(['eq', 'ne', 'not', 'missing', 'present']),
  string: new Set(['eq', 'contains', 'missing', 'present']),
  uri: new Set(['eq', 'missing', 'present']),
  date: new Set(['eq', 'ne', 'lt', 'gt', 'le', 'ge', 'sa', 'eb', 'ap', 'missing', 'present']),
};
const MODIFIERS = {
  token: new Set(['', 'not', 'missing']),
  reference: new Set(['', 'missing']),
  string: new Set(['', 'contains', 'missing']),
  uri: new Set(['', 'missing']),
  date: new Set(['', 'missing']),
};
const RESULT_PARAMS = new Set(['_count', '_offset', '_sort', '_total', '_format', '_pretty']);
const REFERENCE_TAIL = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/;

function unsupported(message) {
  return new OperationOutcomeError(badRequest(`Unsupported search: ${message}`));
}

function searchParam(resourceType, code) {
  return globalSchema.types[resourceType]?.searchParams?.[code];
}

/** Rewrites query pairs into what the engine matches correctly, or throws for what it cannot. */
export function normaliseQuery(resourceType, pairs) {
  const out = [];
  for (const [key, value] of pairs) {
    const [code, modifier = ''] = key.split(':', 2);
    if (code.startsWith('_') && !searchParam(resourceType, code)) {
      if (!RESULT_PARAMS.has(code) && !(code === '_summary' && value === 'count')) {
        throw unsupported(`parameter ${key}`);
      }
      out.push([key, value]);
      continue;
    }
    const param = searchParam(resourceType, code);
    if (!param || key.includes('.')) {
      throw unsupported(`unknown or chained parameter ${key} for ${resourceType}`);
    }
    if (param.type === 'reference') {
      out.push(normaliseReferenceParam(param, code, modifier, value));
      continue;
    }
    if (!MODIFIERS[param.type]?.has(modifier)) {
      throw unsupported(`${param.type} parameter ${key}`);
    }
    out.push([key, value]);
  }
  return out;
}

function normaliseReferenceParam(param, code, modifier, value) {
  const targets = param.target ?? [];
  if (modifier && targets.includes(modifier)) {
    return [code, `${modifier}/${value}`];
  }
  if (!MODIFIERS.reference.has(modifier)) {
    throw unsupported(`reference parameter ${code}:${modifier}`);
  }
  if (modifier === 'missing') {
    return [`${code}:missing`, value];
  }
  const values = value.split(',').flatMap((v) => {
    const tail = REFERENCE_TAIL.exec(v);
    if (tail) return [`${tail[1]}/${tail[2]}`];
    // A bare id means "this id in any of the parameter's target types" (FHIR search rules).
    return targets.length ? targets.map((t) => `${t}/${v}`) : [v];
  });
  return [code, values.join(',')];
}

/** Checks a parsed search request (also what If-None-Exist and batch searches become). */
export function checkSearchRequest(req) {
  if (!req.resourceType || !globalSchema.types[req.resourceType]?.searchParams) {
    throw unsupported(`resource type ${req.resourceType ?? '<none>'}`);
  }
  if (req.include?.length || req.revInclude?.length) throw unsupported('_include/_revinclude');
  if (req.fields?.length || req.summary) throw unsupported('_elements/_summary');
  if (req.cursor || req.types?.length) throw unsupported('_cursor/_type');
  for (const rule of req.sortRules ?? []) {
    if (!searchParam(req.resourceType, rule.code)) throw unsupported(`_sort=${rule.code}`);
  }
  for (const filter of req.filters ?? []) {
    const param = searchParam(req.resourceType, filter.code);
    if (!param) throw unsupported(`unknown parameter ${filter.code} for ${req.resourceType}`);
    if (!OPERATORS[param.type]?.has(filter.operator)) {
      throw unsupported(`${param.type} parameter ${filter.code} with ${filter.operator}`);
    }
  }
}

/** Stored references to this server's own base become relative, as HAPI does on write. */
export function relativiseReferences(node, bases) {
  if (Array.isArray(node)) {
    node.forEach((n) => relativiseReferences(n, bases));
  } else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'reference' && typeof value === 'string') {
        const base = bases.find((b) => value.startsWith(b + '/'));
        if (base) node.reference = value.slice(base.length + 1);
      } else if (typeof value === 'object') {
        relativiseReferences(value, bases);
      }
    }
  }
  return node;
}
