// The Regulations API with the shape of Segment's Public API (DESIGN.md): a regulation is stored
// in DynamoDB, published on the compacted cdp.regulations topic (one record per space and user,
// key `spaceId:userId`), and its status folded from the stages' reports on cdp.regulation-status.
import { randomUUID } from 'node:crypto';
import { GetItemCommand, PutItemCommand, ScanCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Express, Request } from 'express';
import {
  deletes,
  DESTINATION_STAGE_PREFIX,
  REGULATION_TYPES,
  regulationKey,
  type Regulation,
  type RegulationStatus,
  type RegulationType,
} from '@cdp/events';
import { decodeCursor, encodeCursor, HttpError } from '@cdp/http';
import type { BatchingProducer } from '@cdp/kafka';
import type { Workspace } from '@cdp/workspace';
import { regulationsCreated } from './metrics';
import { KEY, type TableNames } from './tables';

/** Segment's limit of userIds per call. */
export const MAX_SUBJECTS = 5_000;

export type OverallStatus = 'INITIALIZED' | 'RUNNING' | 'PARTIAL_SUCCESS' | 'FAILED' | 'FINISHED';

export interface StoredRegulation {
  id: string;
  regulateType: RegulationType;
  subjectType: 'USER_ID';
  subjectIds: string[];
  spaceIds: string[];
  createdAt: string;
}

export class RegulationStore {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tables: Pick<TableNames, 'regulations'>,
  ) {}

  async put(r: StoredRegulation): Promise<void> {
    await this.client.send(
      new PutItemCommand({
        TableName: this.tables.regulations,
        Item: { [KEY]: { S: r.id }, body: { S: JSON.stringify(r) }, createdAt: { S: r.createdAt } },
        ConditionExpression: 'attribute_not_exists(#k)',
        ExpressionAttributeNames: { '#k': KEY },
      }),
    );
  }

  async get(id: string): Promise<StoredRegulation | undefined> {
    const answer = await this.client.send(
      new GetItemCommand({ TableName: this.tables.regulations, Key: { [KEY]: { S: id } }, ConsistentRead: true }),
    );
    return answer.Item ? (JSON.parse(answer.Item.body.S!) as StoredRegulation) : undefined;
  }

  /** A page of regulations in the table's order; `after` is the last key of the previous page. */
  async list(limit: number, after?: string): Promise<{ items: StoredRegulation[]; next?: string }> {
    const items: StoredRegulation[] = [];
    let start: Record<string, AttributeValue> | undefined = after ? { [KEY]: { S: after } } : undefined;
    do {
      const page = await this.client.send(
        new ScanCommand({
          TableName: this.tables.regulations,
          Limit: limit - items.length,
          ExclusiveStartKey: start,
          ConsistentRead: true,
        }),
      );
      for (const item of page.Items ?? []) items.push(JSON.parse(item.body.S!) as StoredRegulation);
      start = page.LastEvaluatedKey;
    } while (start && items.length < limit);
    return { items, next: start ? start[KEY].S : undefined };
  }
}

/**
 * The overall status from the stages' reports, as Segment defines it: FINISHED when every
 * configured stage finished; RUNNING while any has not reported (INITIALIZED before the first
 * report); once all reported, FAILED when every stage that reported failed, PARTIAL_SUCCESS when
 * some failed and others finished.
 */
export function overallStatus(stages: string[], reports: Map<string, RegulationStatus>): OverallStatus {
  const got = stages.map((s) => reports.get(s));
  if (got.every((r) => r === undefined)) return 'INITIALIZED';
  if (got.some((r) => r === undefined || r.status === 'RUNNING')) return 'RUNNING';
  const failed = got.filter((r) => r!.status === 'FAILED').length;
  if (failed === 0) return 'FINISHED';
  return failed === got.length ? 'FAILED' : 'PARTIAL_SUCCESS';
}

export interface RegulationsApiDeps {
  store: RegulationStore;
  producer: Pick<BatchingProducer, 'send'>;
  /** cdp.regulations. */
  topic: string;
  workspace: () => Workspace;
  /** Stages a regulation waits for (IDENTITY_REGULATION_STAGES). */
  stages: string[];
  /** The latest report of a stage for a regulation (cdp.regulation-status, key `regulationId:stage`). */
  status: (regulationId: string, stage: string) => RegulationStatus | undefined;
  now?: () => number;
}

const validation = (message: string) => new HttpError(400, 'validation_error', message);

/** The configured stages a regulation of this type waits for: destinations' (`destination.<id>`) only for deletions. */
export function stagesOf(type: RegulationType, stages: readonly string[]): string[] {
  return deletes(type) ? [...stages] : stages.filter((s) => !s.startsWith(DESTINATION_STAGE_PREFIX));
}

function view(r: StoredRegulation, deps: RegulationsApiDeps) {
  const stages = stagesOf(r.regulateType, deps.stages);
  const reports = new Map<string, RegulationStatus>();
  for (const stage of stages) {
    const s = deps.status(r.id, stage);
    if (s) reports.set(stage, s);
  }
  const overall = overallStatus(stages, reports);
  const finishedAt =
    overall === 'FINISHED' || overall === 'FAILED' || overall === 'PARTIAL_SUCCESS'
      ? [...reports.values()].map((s) => s.reportedAt).sort()[reports.size - 1]
      : null;
  return {
    id: r.id,
    workspaceId: 'default',
    overallStatus: overall,
    regulateType: r.regulateType,
    subjectType: r.subjectType,
    subjectCount: r.subjectIds.length,
    spaceIds: r.spaceIds,
    createdAt: r.createdAt,
    finishedAt,
    streamStatus: stages.map((stage) => {
      const s = reports.get(stage);
      return {
        id: stage,
        status: s?.status ?? 'INITIALIZED',
        reportedAt: s?.reportedAt ?? null,
        handled: s?.handled ?? 0,
        failed: s?.failed ?? 0,
        ...(s?.detail !== undefined && { detail: s.detail }),
      };
    }),
  };
}

function parseCreate(body: unknown): { type: RegulationType; subjectIds: string[] } {
  if (typeof body !== 'object' || body === null) throw validation('the body must be a JSON object');
  const b = body as Record<string, unknown>;
  const type = b.regulationType ?? b.regulateType;
  if (typeof type !== 'string' || !(REGULATION_TYPES as readonly string[]).includes(type))
    throw validation(`regulationType must be one of ${REGULATION_TYPES.join(', ')}`);
  if (b.subjectType !== 'USER_ID') throw validation('subjectType must be USER_ID');
  const ids = b.subjectIds;
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_SUBJECTS)
    throw validation(`subjectIds must list 1 to ${MAX_SUBJECTS} user ids`);
  for (const id of ids)
    if (typeof id !== 'string' || id === '' || id.length > 1024) throw validation('each subjectId must be a non-empty string');
  return { type: type as RegulationType, subjectIds: [...new Set(ids as string[])] };
}

export function regulationsApiRoutes(deps: RegulationsApiDeps): (app: Express) => void {
  const now = deps.now ?? Date.now;

  async function create(req: Request, spaceIds: string[]) {
    const { type, subjectIds } = parseCreate(req.body);
    const r: StoredRegulation = {
      id: randomUUID(),
      regulateType: type,
      subjectType: 'USER_ID',
      subjectIds,
      spaceIds,
      createdAt: new Date(now()).toISOString(),
    };
    // Stored first: a published regulation always has its record to answer status from.
    await deps.store.put(r);
    const subjects = subjectIds.length * spaceIds.length;
    await deps.producer.send(
      deps.topic,
      spaceIds.flatMap((spaceId) =>
        subjectIds.map((userId) => {
          const value: Regulation = { regulationId: r.id, type, userId, spaceId, requestedAt: r.createdAt, subjects };
          return { key: regulationKey(spaceId, userId), value: JSON.stringify(value) };
        }),
      ),
    );
    regulationsCreated.labels(type).inc();
    return { data: { regulateId: r.id } };
  }

  async function one(id: string, space?: string) {
    const r = await deps.store.get(id);
    if (!r || (space !== undefined && !r.spaceIds.includes(space))) throw new HttpError(404, 'not_found', 'Regulation was not found.');
    return { data: { regulation: view(r, deps) } };
  }

  async function list(req: Request, space?: string) {
    const rawCount = req.query['pagination.count'] ?? req.query.count;
    const count = rawCount === undefined ? 10 : Number(rawCount);
    if (!Number.isInteger(count) || count < 1 || count > 100) throw validation('pagination.count must be an integer from 1 to 100');
    const rawCursor = req.query['pagination.cursor'] ?? req.query.cursor;
    const after = typeof rawCursor === 'string' && rawCursor !== '' ? decodeCursor(rawCursor) : undefined;
    if (after !== undefined && typeof after !== 'string') throw validation('pagination.cursor is not a cursor this server issued');
    const page = await deps.store.list(count, after);
    const items = space === undefined ? page.items : page.items.filter((r) => r.spaceIds.includes(space));
    return {
      data: {
        regulations: items.map((r) => view(r, deps)),
        pagination: { current: typeof rawCursor === 'string' ? rawCursor : '', next: page.next ? encodeCursor(page.next) : null },
      },
    };
  }

  const spaceOf = (req: Request): string => {
    const space = String(req.params.space);
    if (!deps.workspace().space(space)) throw new HttpError(404, 'not_found', 'Space was not found.');
    return space;
  };

  return (app) => {
    app.post('/v1/regulations', async (req, res) => {
      // Workspace-wide, as Segment's: every space of the workspace.
      res.json(
        await create(
          req,
          deps.workspace().config.spaces.map((s) => s.id),
        ),
      );
    });
    app.post('/v1/spaces/:space/regulations', async (req, res) => {
      res.json(await create(req, [spaceOf(req)]));
    });
    app.get('/v1/regulations', async (req, res) => {
      res.json(await list(req));
    });
    app.get('/v1/spaces/:space/regulations', async (req, res) => {
      res.json(await list(req, spaceOf(req)));
    });
    app.get('/v1/regulations/:id', async (req, res) => {
      res.json(await one(String(req.params.id)));
    });
    app.get('/v1/spaces/:space/regulations/:id', async (req, res) => {
      res.json(await one(String(req.params.id), spaceOf(req)));
    });
  };
}
