// MemoryRepository with the behaviour of a real FHIR server where radflow's tests rely on it:
// validation on write, server-assigned ids and sequential version ids ("1", "2", ...),
// If-Match checks, a history that reading does not reorder, serialised transactions, and a
// snapshot so a stopped-and-restarted server still has its data.
import { AsyncLocalStorage } from 'node:async_hooks';
import { badRequest, notFound, OperationOutcomeError, preconditionFailed } from '@medplum/core';
import { MemoryRepository } from '@medplum/fhir-router';
import { checkResource } from './schema.mjs';
import { checkSearchRequest, relativiseReferences } from './search.mjs';

export class CheckedRepository extends MemoryRepository {
  constructor({ bases = [] } = {}) {
    super();
    this.bases = bases;
    this.tail = Promise.resolve();
    this.inTransaction = new AsyncLocalStorage();
    // MemoryRepository keeps its maps in plain fields; fail loudly if a release renames them.
    if (!(this.resources instanceof Map) || !(this.history instanceof Map)) {
      throw new Error('unexpected MemoryRepository internals: check the pinned @medplum version');
    }
  }

  async createResource(resource, options) {
    checkResource(resource);
    const keepId = options?.assignedId && resource.id;
    return this.store({ ...resource, id: keepId ? resource.id : this.generateId() });
  }

  async updateResource(resource, options) {
    checkResource(resource);
    if (!resource.id) throw new OperationOutcomeError(badRequest('Missing id'));
    if (options?.ifMatch) {
      const current = this.resources.get(resource.resourceType)?.get(resource.id);
      if (!current) throw new OperationOutcomeError(notFound);
      if (current.meta?.versionId !== options.ifMatch) throw new OperationOutcomeError(preconditionFailed);
    }
    return this.store(resource);
  }

  async store(resource) {
    const versions = this.history.get(resource.resourceType)?.get(resource.id) ?? [];
    const copy = relativiseReferences(structuredClone(resource), this.bases);
    copy.meta = { ...copy.meta, versionId: String(versions.length + 1), lastUpdated: new Date().toISOString() };
    return super.createResource(copy);
  }

  async readHistory(resourceType, id, options) {
    await this.readResource(resourceType, id);
    // The parent reverses its stored array in place, so every read flipped the order.
    const versions = [...(this.history.get(resourceType)?.get(id) ?? [])].reverse();
    const offset = options?.offset ?? 0;
    const page = versions.slice(offset, options?.limit ? offset + options.limit : undefined);
    return {
      resourceType: 'Bundle',
      type: 'history',
      total: versions.length,
      entry: page.map((v) => ({ resource: structuredClone(v) })),
    };
  }

  async search(searchRequest) {
    checkSearchRequest(searchRequest);
    return super.search(searchRequest);
  }

  // Conditional create must be atomic even if a future release awaits real I/O in between;
  // re-entrant because a transaction Bundle runs conditional creates inside its transaction.
  async withTransaction(callback) {
    if (this.inTransaction.getStore()) return callback(undefined);
    const previous = this.tail;
    let release;
    this.tail = new Promise((resolve) => (release = resolve));
    await previous;
    try {
      return await this.inTransaction.run(true, () => callback(undefined));
    } finally {
      release();
    }
  }

  snapshot() {
    const types = {};
    for (const [type, byId] of this.history) {
      types[type] = {};
      for (const [id, versions] of byId) {
        types[type][id] = { versions, live: Boolean(this.resources.get(type)?.has(id)) };
      }
    }
    return { format: 1, types };
  }

  async restore(snapshot) {
    for (const [, byId] of Object.entries(snapshot.types ?? {})) {
      for (const [, { versions, live }] of Object.entries(byId)) {
        for (const version of versions) await super.createResource(version);
        if (!live) await super.deleteResource(versions[0].resourceType, versions[0].id);
      }
    }
  }
}
