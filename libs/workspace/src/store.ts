import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import { createLogger, type Logger } from '@cdp/log';
import { counter, gauge, type Registry } from '@cdp/metrics';
import { WorkspaceConfigError } from './errors';
import { errorCode, fingerprint, formatForPath, loadWorkspaceFile, parseWorkspace, type LoadOptions } from './load';
import type { Workspace } from './workspace';

export const DEFAULT_POLL_INTERVAL_MS = 2000;

export interface WorkspaceStoreOptions extends LoadOptions {
  /** The workspace file (`CDP_WORKSPACE_FILE`). */
  file: string;
  /** How often the file is re-read; 0 disables polling (tests call `check()`). */
  pollIntervalMs?: number;
  logger?: Logger;
  /** Metrics registry; the process registry by default. */
  registry?: Registry;
}

export type ReloadOutcome = 'unchanged' | 'applied' | 'rejected';

export interface WorkspaceStoreEvents {
  /** A new valid version is in force. */
  change: [next: Workspace, previous: Workspace];
  /** A new version was refused; the previous one stays in force. */
  rejected: [error: WorkspaceConfigError];
}

/**
 * Holds the workspace version in force and swaps in new valid versions of the file.
 *
 * Polls by content hash instead of fs.watch: Kubernetes updates a mounted ConfigMap by swapping
 * a `..data` symlink, which inotify-based watches miss or report on the wrong path. Mounted
 * `$file` secrets are hashed too, so a rotated Secret is picked up the same way.
 */
export class WorkspaceStore extends EventEmitter<WorkspaceStoreEvents> {
  readonly file: string;
  private workspace: Workspace;
  /** Fingerprint of the last content tried, valid or not: a bad file is reported once, not every poll. */
  private lastSeen: string;
  /** Message of the last rejection while the file's content is not the version in force. */
  private lastRejection: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private checking: Promise<ReloadOutcome> | undefined;
  private readonly log: Logger;
  private readonly loadOptions: LoadOptions;
  private readonly pollIntervalMs: number;
  private readonly metrics: ReturnType<typeof storeMetrics>;

  /** Loads the file (throwing WorkspaceConfigError if it is invalid, so the service fails to start) and starts polling. */
  static open(options: WorkspaceStoreOptions): WorkspaceStore {
    return new WorkspaceStore(options);
  }

  private constructor(options: WorkspaceStoreOptions) {
    super();
    this.file = options.file;
    this.log = options.logger ?? createLogger({ name: 'workspace' });
    this.loadOptions = { env: options.env, baseDir: options.baseDir ?? dirname(resolvePath(options.file)), check: options.check };
    this.pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    this.metrics = storeMetrics(options.registry);

    this.workspace = loadWorkspaceFile(this.file, this.loadOptions);
    this.lastSeen = this.workspace.fingerprint;
    this.metrics.reloads.labels('applied').inc(0);
    this.metrics.reloads.labels('rejected').inc(0);
    this.metrics.lastReloadSuccess.set(1);
    this.setInfo(this.workspace);
    this.log.info({ file: this.file, version: this.workspace.version, ...this.workspace.summary() }, 'workspace config loaded');
    this.schedule();
  }

  /** The version in force. Hold on to the returned object for the length of one unit of work, so it sees one consistent config. */
  current(): Workspace {
    return this.workspace;
  }

  /** Re-reads the file now; concurrent calls share one check. */
  check(): Promise<ReloadOutcome> {
    this.checking ??= this.doCheck().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  /** Stops polling. Idempotent. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.closed || this.pollIntervalMs <= 0) return;
    // A chain of timeouts, not an interval: a slow read never overlaps the next one.
    this.timer = setTimeout(() => {
      this.check()
        .catch((error: unknown) => this.log.error({ file: this.file, error: String(error) }, 'workspace poll failed'))
        .finally(() => this.schedule());
    }, this.pollIntervalMs);
    this.timer.unref();
  }

  private async doCheck(): Promise<ReloadOutcome> {
    let text: string | undefined;
    let seen: string;
    let readError: WorkspaceConfigError | undefined;
    try {
      text = await readFile(this.file, 'utf8');
      seen = fingerprint(text, this.readSecretFiles());
    } catch (error) {
      seen = `unreadable:${errorCode(error)}`;
      readError = new WorkspaceConfigError(this.file, [{ path: [], message: `cannot read file (${errorCode(error)})` }]);
    }
    // While rejected, keep retrying the same content: what it lacked (a Secret mounted a little
    // after its ConfigMap) may have appeared, and those files are not in the fingerprint.
    if (seen === this.lastSeen && this.lastRejection === undefined) return 'unchanged';
    if (seen === this.workspace.fingerprint) {
      this.lastSeen = seen;
      if (this.lastRejection !== undefined) {
        // A bad edit was reverted: the file matches the version in force again.
        this.lastRejection = undefined;
        this.metrics.lastReloadSuccess.set(1);
        this.log.info({ file: this.file, version: this.workspace.version }, 'workspace file matches the version in force again');
      }
      return 'unchanged';
    }

    let next: Workspace;
    try {
      if (readError || text === undefined) throw readError;
      next = parseWorkspace(text, { ...this.loadOptions, format: formatForPath(this.file), file: this.file });
    } catch (error) {
      if (!(error instanceof WorkspaceConfigError)) throw error;
      // The same bad content failing the same way is reported once, not on every poll.
      if (seen === this.lastSeen && error.message === this.lastRejection) return 'unchanged';
      this.lastSeen = seen;
      this.lastRejection = error.message;
      return this.reject(error);
    }
    // The build may have read a different set of secret files than the poll hashed.
    this.lastSeen = next.fingerprint;
    this.lastRejection = undefined;
    const previous = this.workspace;
    this.workspace = next;
    this.metrics.reloads.labels('applied').inc();
    this.metrics.lastReloadSuccess.set(1);
    this.setInfo(next);
    this.log.info(
      { file: this.file, version: next.version, previousVersion: previous.version, ...next.summary() },
      'workspace config reloaded',
    );
    try {
      this.emit('change', next, previous);
    } catch (error) {
      // A listener's bug must not stop the store; the new version is in force either way.
      this.log.error({ file: this.file, error: String(error) }, 'workspace change listener failed');
    }
    return 'applied';
  }

  private reject(error: WorkspaceConfigError): ReloadOutcome {
    this.metrics.reloads.labels('rejected').inc();
    this.metrics.lastReloadSuccess.set(0);
    this.log.warn(
      { file: this.file, version: this.workspace.version, issues: error.details },
      `workspace reload rejected, keeping version ${this.workspace.version}: ${error.message}`,
    );
    if (this.listenerCount('rejected') > 0) {
      try {
        this.emit('rejected', error);
      } catch (listenerError) {
        this.log.error({ file: this.file, error: String(listenerError) }, 'workspace rejected listener failed');
      }
    }
    return 'rejected';
  }

  /** Current content of the secret files the version in force was built from. */
  private readSecretFiles(): Map<string, string | undefined> {
    const files = new Map<string, string | undefined>();
    for (const file of this.workspace.secretFiles) {
      try {
        files.set(file, readFileSync(file, 'utf8').replace(/\r?\n$/, ''));
      } catch {
        files.set(file, undefined);
      }
    }
    return files;
  }

  private setInfo(workspace: Workspace): void {
    this.metrics.info.reset();
    this.metrics.info.labels(workspace.version).set(1);
    this.metrics.loadedAt.set(workspace.loadedAt.getTime() / 1000);
  }
}

function storeMetrics(register?: Registry) {
  return {
    reloads: counter({
      name: 'cdp_workspace_reloads_total',
      help: 'Workspace file changes seen after start, by outcome (applied or rejected)',
      labelNames: ['outcome'] as const,
      register,
    }),
    lastReloadSuccess: gauge({
      name: 'cdp_workspace_last_reload_success',
      help: '1 if the latest workspace file content is the one in force, 0 if it was rejected',
      register,
    }),
    info: gauge({
      name: 'cdp_workspace_config_info',
      help: 'The workspace version in force; always 1',
      labelNames: ['version'] as const,
      register,
    }),
    loadedAt: gauge({
      name: 'cdp_workspace_loaded_timestamp_seconds',
      help: 'Unix time at which the workspace version in force was loaded',
      register,
    }),
  };
}
