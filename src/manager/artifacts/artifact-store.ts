/**
 * Binary task outputs (screenshots, PDFs, exported assets) kept by the manager and served by URL, so a task's
 * status stays small JSON. Bounded by total bytes; the oldest task's artifacts go first.
 */
import { FleetError } from '../../protocol/errors.js';
import type { ArtifactMeta } from '../queue/task.js';

export interface StoredArtifact extends ArtifactMeta {
  data: Buffer;
}

export interface ArtifactStore {
  put(taskId: string, artifacts: StoredArtifact[]): Promise<void>;
  get(taskId: string, name: string): Promise<StoredArtifact>;
  delete(taskId: string): Promise<void>;
}

export class MemoryArtifactStore implements ArtifactStore {
  private readonly byTask = new Map<string, Map<string, StoredArtifact>>();
  private bytes = 0;

  constructor(private readonly maxBytes = 256 * 1024 * 1024) {}

  async put(taskId: string, artifacts: StoredArtifact[]): Promise<void> {
    await this.delete(taskId);
    const map = new Map<string, StoredArtifact>();
    for (const a of artifacts) {
      map.set(a.name, a);
      this.bytes += a.data.length;
    }
    this.byTask.set(taskId, map);
    // Map iteration order is insertion order, so the first key is the oldest task.
    for (const oldest of this.byTask.keys()) {
      if (this.bytes <= this.maxBytes || oldest === taskId) break;
      await this.delete(oldest);
    }
  }

  async get(taskId: string, name: string): Promise<StoredArtifact> {
    const a = this.byTask.get(taskId)?.get(name);
    if (!a) throw new FleetError('not_found', `task ${taskId} has no artifact "${name}" (or it was evicted)`);
    return a;
  }

  async delete(taskId: string): Promise<void> {
    const map = this.byTask.get(taskId);
    if (!map) return;
    for (const a of map.values()) this.bytes -= a.data.length;
    this.byTask.delete(taskId);
  }
}
