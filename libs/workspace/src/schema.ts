// The one schema of workspace configuration. Every object is strict, so a typo in the file is
// an error naming the field instead of a silently ignored setting.
import { z } from 'zod';
import { fqlSyntaxError } from './fql';
import { jsonSchemaProblem } from './json-schema';
import { looksLikeSecretRef, parseSecretRef, SecretReference, secretField, stringOrSecret } from './secret-ref';

/** Ids end up in Kafka keys (`sourceId:messageId`), Consul paths and table columns. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const ID_MESSAGE = 'must match [A-Za-z0-9_-]{1,64}';

/** `webhook`, or a Segment action-destination slug such as `actions-amplitude`. */
export const DESTINATION_TYPE_PATTERN = /^[a-z0-9][a-z0-9-]{0,127}$/;

export const MESSAGE_TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const;

/** Header names whose values are credentials: they must be secret references. */
export const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set([
  'authorization',
  'proxy-authorization',
  'x-api-key',
  'api-key',
  'x-auth-token',
  'cookie',
]);

/**
 * Action-destination setting names that hold credentials (`apiKey`, `secretKey`, `clientSecret`,
 * `accessToken`, `password`, ...). Their values must be secret references.
 */
export const CREDENTIAL_SETTING = /(secret|password|passwd|token|api_?key|access_?key|private_?key|credential)/i;

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const id = () => z.string().regex(ID_PATTERN, { error: ID_MESSAGE });
const name = () => z.string().trim().min(1, { error: 'must not be empty' }).max(200);
const nonEmpty = () => z.string().min(1, { error: 'must not be empty' });

/** FQL text (Segment's filter language). Only checked for balanced quotes and brackets here; transform compiles it. */
const fql = () =>
  z
    .string()
    .trim()
    .min(1, { error: 'must not be empty' })
    .max(10_000)
    .superRefine((text, ctx) => {
      const problem = fqlSyntaxError(text);
      if (problem) ctx.addIssue({ code: 'custom', message: `invalid FQL: ${problem}` });
    });

const regexString = () =>
  z.string().superRefine((text, ctx) => {
    try {
      new RegExp(text);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'is not a valid regular expression' });
    }
  });

// ---------------------------------------------------------------------------------------------
// Spaces

export const IDENTIFIER_WINDOWS = ['ever', 'weekly', 'monthly', 'annually'] as const;

const IdentifierRuleSchema = z.strictObject({
  /** Lower number = higher priority; when a merge would break a limit, the lowest-priority id is dropped. */
  priority: z.int().min(1),
  /** How many distinct values of this identifier one profile may hold within `window`. */
  limit: z.int().min(1).max(1000).default(5),
  window: z.enum(IDENTIFIER_WINDOWS).default('ever'),
});

/** Segment's defaults (segment-compat.md §3.4): user_id 1 value, others 5. */
const DEFAULT_IDENTIFIERS = {
  user_id: { priority: 1, limit: 1, window: 'ever' as const },
  email: { priority: 2, limit: 5, window: 'ever' as const },
  anonymous_id: { priority: 3, limit: 5, window: 'ever' as const },
};

const IdentitySettingsSchema = z
  .strictObject({
    identifiers: z
      .record(z.string().regex(/^[a-z0-9_.]{1,64}$/, { error: 'identifier types match [a-z0-9_.]{1,64}' }), IdentifierRuleSchema)
      .superRefine((identifiers, ctx) => {
        const seen = new Map<number, string>();
        for (const [type, rule] of Object.entries(identifiers)) {
          const other = seen.get(rule.priority);
          if (other)
            ctx.addIssue({ code: 'custom', path: [type, 'priority'], message: `priority ${rule.priority} already used by ${other}` });
          else seen.set(rule.priority, type);
        }
      })
      .default(DEFAULT_IDENTIFIERS),
    /** Limit for identifier types not listed above. */
    defaultLimit: z.int().min(1).max(1000).default(5),
    /** Values never promoted to an identifier (exact, case-sensitive). */
    blockedValues: z.array(z.string()).default(['-1', 'null', 'undefined', 'anonymous']),
    /** Regular expressions for values never promoted to an identifier. */
    blockedPatterns: z.array(regexString()).default(['^[0-]*$']),
    maxMergesPerProfile: z.int().min(0).default(100),
    maxMappingsPerProfile: z.int().min(1).default(1000),
  })
  .prefault({});

export const SpaceSchema = z.strictObject({
  id: id(),
  name: name(),
  identity: IdentitySettingsSchema,
});

// ---------------------------------------------------------------------------------------------
// Sources: tracking plan

export const PROPERTY_TYPES = ['any', 'string', 'number', 'integer', 'boolean', 'object', 'array', 'null'] as const;
export type PropertyType = (typeof PROPERTY_TYPES)[number];

/** A JSON-Schema-like rule for one event property (a subset of draft-07, as Segment Protocols uses). */
export interface PropertyRule {
  type?: PropertyType | PropertyType[];
  required?: boolean;
  description?: string;
  enum?: (string | number | boolean | null)[];
  /** Regular expression a string must match. */
  pattern?: string;
  format?: 'date-time' | 'email' | 'uri' | 'uuid';
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  /** Rule for every element of an array. */
  items?: PropertyRule;
  /** Rules for the keys of an object. */
  properties?: Record<string, PropertyRule>;
}

export const PropertyRuleSchema: z.ZodType<PropertyRule> = z.lazy(() =>
  z.strictObject({
    type: z
      .union([z.enum(PROPERTY_TYPES), z.array(z.enum(PROPERTY_TYPES)).min(1)], {
        error: `must be one of ${PROPERTY_TYPES.join(', ')}, or a list of them`,
      })
      .optional(),
    required: z.boolean().optional(),
    description: z.string().optional(),
    enum: z
      .array(z.union([z.string(), z.number(), z.boolean(), z.null()]))
      .min(1)
      .optional(),
    pattern: regexString().optional(),
    format: z.enum(['date-time', 'email', 'uri', 'uuid']).optional(),
    minimum: z.number().optional(),
    maximum: z.number().optional(),
    minLength: z.int().min(0).optional(),
    maxLength: z.int().min(0).optional(),
    items: PropertyRuleSchema.optional(),
    properties: z.record(nonEmpty(), PropertyRuleSchema).optional(),
  }),
);

const PlannedEventSchema = z.strictObject({
  /** Track event name, matched exactly and case-sensitively, as Segment does. */
  name: nonEmpty().max(200),
  description: z.string().optional(),
  properties: z.record(nonEmpty(), PropertyRuleSchema).default({}),
});

/** The traits plan of identify or group calls. */
const TraitsPlanSchema = z.strictObject({
  traits: z.record(nonEmpty(), PropertyRuleSchema).default({}),
});

/** A JSON Schema (draft-07) for the whole message, checked with ajv's meta-schema at load. */
const JsonSchemaSchema = z.record(z.string(), z.unknown()).superRefine((schema, ctx) => {
  const problem = jsonSchemaProblem(schema);
  if (problem) ctx.addIssue({ code: 'custom', message: `invalid JSON Schema (draft-07): ${problem}` });
});

/** Segment Protocols' schema controls (segment-compat.md §3.7); every default is `allow`. */
export const EnforcementSchema = z
  .strictObject({
    /** Track events whose name is not in `events`: pass, or block the event. */
    unplannedEvents: z.enum(['allow', 'block']).default('allow'),
    /** Properties of a planned track event the plan does not list: keep, or omit them. */
    unplannedProperties: z.enum(['allow', 'omit']).default('allow'),
    /** Track properties that break their rule: keep, block the event, or omit the offending properties. */
    violations: z.enum(['allow', 'block', 'omit']).default('allow'),
    /** Identify/group traits the `identify`/`group` plan does not list: keep, or omit them. */
    unplannedTraits: z.enum(['allow', 'omit']).default('allow'),
    /** Identify/group traits that break their rule: keep, block the event, or omit the offending traits. */
    traitViolations: z.enum(['allow', 'block', 'omit']).default('allow'),
    /** Messages that break the `common` schema: keep, or block the event (checked after the controls above). */
    commonViolations: z.enum(['allow', 'block']).default('allow'),
  })
  .prefault({});

export const TrackingPlanSchema = z.strictObject({
  /** Names the plan in violation samples; the source id when absent. */
  id: id().optional(),
  events: z.array(PlannedEventSchema).default([]),
  /** Traits of identify calls; identify traits are not checked when absent. */
  identify: TraitsPlanSchema.optional(),
  /** Traits of group calls; group traits are not checked when absent. */
  group: TraitsPlanSchema.optional(),
  /** Segment's Common JSON Schema: applied to the whole message of every type. */
  common: JsonSchemaSchema.optional(),
  enforcement: EnforcementSchema,
});

/**
 * Settings of an action destination: free-form, but credential-named ones must be secret
 * references, at any depth (e.g. `oauth.refreshToken`), and references anywhere are resolved.
 */
const ActionSettingsSchema = z.record(z.string().min(1), z.unknown()).transform((settings, ctx) => {
  const walk = (value: Record<string, unknown>, path: string[]): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      if (looksLikeSecretRef(item)) {
        const ref = parseSecretRef(item);
        if (typeof ref === 'string') ctx.issues.push({ code: 'custom', path: [...path, key], message: ref, input: undefined });
        else out[key] = ref;
      } else if (CREDENTIAL_SETTING.test(key) && item !== undefined && item !== null && item !== '') {
        ctx.issues.push({
          code: 'custom',
          path: [...path, key],
          message:
            typeof item === 'object'
              ? 'must be a secret reference ({ $env: NAME } or { $file: /path }) (credential setting)'
              : 'must be a secret reference ({ $env: NAME } or { $file: /path }), not a literal value (credential setting)',
          input: undefined,
        });
      } else if (isPlainObject(item)) {
        out[key] = walk(item, [...path, key]);
      } else {
        out[key] = item;
      }
    }
    return out;
  };
  return walk(settings, []);
});

// ---------------------------------------------------------------------------------------------
// Sources: transformations (applied in order by transform, before destination filters)

const transformationBase = {
  id: id().optional(),
  name: z.string().max(200).optional(),
  enabled: z.boolean().default(true),
};

export const TransformationSchema = z.discriminatedUnion('type', [
  z.strictObject({ ...transformationBase, type: z.literal('rename_event'), from: nonEmpty(), to: nonEmpty() }),
  z.strictObject({
    ...transformationBase,
    type: z.literal('rename_properties'),
    /** Only this track event; every event when absent. */
    event: nonEmpty().optional(),
    /** old name → new name, inside `properties` (track/page/screen) or `traits` (identify/group). */
    properties: z.record(nonEmpty(), nonEmpty()).refine((m) => Object.keys(m).length > 0, { error: 'must rename at least one property' }),
  }),
  z.strictObject({
    ...transformationBase,
    type: z.literal('drop_properties'),
    event: nonEmpty().optional(),
    /** Dotted paths from the message root, e.g. `properties.email`, `context.ip`. */
    properties: z.array(nonEmpty()).min(1, { error: 'must name at least one property' }),
  }),
  z.strictObject({ ...transformationBase, type: z.literal('drop_event'), if: fql() }),
  z.strictObject({
    ...transformationBase,
    type: z.literal('code'),
    /** A Segment insert function's source (`async function onTrack(event, settings)`, ...); compiled and run by transform's sandbox. */
    code: z.string().min(1, { error: 'must not be empty' }).max(65_536),
    /** The function's `settings` argument: checked and resolved as an action destination's (credentials as secret references). */
    settings: ActionSettingsSchema.default({}),
  }),
]);

/** Write keys travel as the Basic-auth username, so a colon or whitespace would break parsing. */
export function writeKeyProblem(key: string): string | undefined {
  if (key.length > 256) return 'must be at most 256 characters';
  if (/[:\s]/.test(key)) return 'must not contain ":" or whitespace';
  return undefined;
}

export const SourceSchema = z.strictObject({
  id: id(),
  name: name(),
  spaceId: nonEmpty(),
  /** A disabled source's write keys are refused at the API. */
  enabled: z.boolean().default(true),
  /** Literal strings or secret references; several keys allow rotation. */
  writeKeys: z.array(stringOrSecret(writeKeyProblem)).min(1, { error: 'must contain at least one key' }),
  rateLimit: z
    .strictObject({
      eventsPerSecond: z.number().positive().max(10_000_000),
      /** Bucket size; defaults to one second's worth of events. */
      burst: z.int().positive().optional(),
    })
    .transform((r) => ({ eventsPerSecond: r.eventsPerSecond, burst: r.burst ?? Math.max(1, Math.ceil(r.eventsPerSecond)) }))
    .optional(),
  trackingPlan: TrackingPlanSchema.optional(),
  transformations: z.array(TransformationSchema).default([]),
});

// ---------------------------------------------------------------------------------------------
// Destinations

const fieldsSpec = () =>
  z.record(z.string(), z.array(nonEmpty()).min(1)).refine((f) => Object.keys(f).length > 0, { error: 'must name at least one field' });

/** Segment destination-filter actions (segment-compat.md §3.6), applied in the order sample, drop, drop/allow properties. */
export const FilterActionSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('drop') }),
  z.strictObject({
    type: z.literal('sample'),
    percent: z.number().min(0).max(100),
    /** Field whose value makes sampling deterministic (e.g. `userId`). */
    path: nonEmpty().optional(),
  }),
  /** `fields`: `{ "": [top-level fields], properties: [...], context: [...] }`, as Segment's API. */
  z.strictObject({ type: z.literal('drop_properties'), fields: fieldsSpec() }),
  z.strictObject({ type: z.literal('allow_properties'), fields: fieldsSpec() }),
]);

export const FilterRuleSchema = z.strictObject({
  id: id().optional(),
  name: nonEmpty().max(64),
  enabled: z.boolean().default(true),
  /** FQL condition, or `all`. */
  if: fql(),
  actions: z.array(FilterActionSchema).min(1, { error: 'must contain at least one action' }),
});

export const FiltersSchema = z
  .strictObject({
    /** Only these message types pass. */
    allowTypes: z.array(z.enum(MESSAGE_TYPES)).min(1).optional(),
    /** Only track events with these names pass (other message types are not affected). */
    allowEvents: z.array(nonEmpty()).min(1, { error: 'must not be empty (remove it to allow every event)' }).optional(),
    /** Track events with these names are dropped. */
    denyEvents: z.array(nonEmpty()).optional(),
    rules: z.array(FilterRuleSchema).default([]),
  })
  .prefault({});

export const SubscriptionSchema = z.strictObject({
  id: id(),
  name: name(),
  /** The action to run (action destinations only), e.g. `trackEvent`. */
  action: nonEmpty().max(128).optional(),
  /** FQL trigger; `all` matches every event. Required for action destinations. */
  subscribe: fql().optional(),
  /** Segment mapping object (field → value or directive such as `{ "@path": "$.userId" }`); opaque here. */
  mapping: z.record(z.string(), z.unknown()).default({}),
  enabled: z.boolean().default(true),
});

export const LimitsSchema = z
  .strictObject({
    /** In-flight requests to this destination per director. */
    maxConcurrency: z.int().min(1).max(10_000).default(10),
    /** Requests per second per director; unlimited when absent. */
    maxRatePerSecond: z.number().positive().optional(),
    /** How long a job is retried before it is archived as undelivered (director default: 4 h). */
    retryWindowMs: z
      .int()
      .min(60_000, { error: 'must be at least 60000 (1 minute)' })
      .max(7 * 24 * 3_600_000, { error: 'must be at most 604800000 (7 days)' })
      .optional(),
  })
  .prefault({});

function checkHeaderValues(headers: Record<string, string | SecretReference>, ctx: z.RefinementCtx): void {
  for (const [header, value] of Object.entries(headers)) {
    if (typeof value !== 'string') continue;
    if (CREDENTIAL_HEADERS.has(header.toLowerCase())) {
      ctx.addIssue({
        code: 'custom',
        path: [header],
        message: 'must be a secret reference ({ $env: NAME } or { $file: /path }), not a literal value (credential header)',
      });
    } else if (/[\r\n]/.test(value)) {
      ctx.addIssue({ code: 'custom', path: [header], message: 'must not contain line breaks' });
    }
  }
}

export const WebhookSettingsSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/ }),
  method: z.enum(['POST', 'PUT', 'PATCH']).default('POST'),
  /** Extra request headers; credential headers (Authorization, X-Api-Key, ...) must be secret references. */
  headers: z
    .record(z.string().regex(HEADER_NAME, { error: 'invalid header name' }), stringOrSecret())
    .superRefine(checkHeaderValues)
    .default({}),
  timeoutMs: z.int().min(100).max(120_000).default(10_000),
  /** Key for the HMAC-SHA256 signature of each request body. */
  hmacSecret: secretField('hmacSecret').optional(),
});

export type WebhookSettingsParsed = z.output<typeof WebhookSettingsSchema>;
export type ActionSettingsParsed = Record<string, unknown>;

const DestinationInputSchema = z.strictObject({
  id: id(),
  name: name(),
  type: z
    .string()
    .regex(DESTINATION_TYPE_PATTERN, { error: 'must be "webhook" or an action-destination slug (lowercase letters, digits, dashes)' }),
  enabled: z.boolean().default(true),
  settings: z.record(z.string(), z.unknown()).default({}),
  subscriptions: z.array(SubscriptionSchema).default([]),
  filters: FiltersSchema,
  limits: LimitsSchema,
});

type DestinationInputParsed = z.output<typeof DestinationInputSchema>;
type SubscriptionParsed = Omit<z.output<typeof SubscriptionSchema>, 'subscribe'> & { subscribe: string };

interface DestinationCommon extends Omit<DestinationInputParsed, 'settings' | 'subscriptions'> {
  subscriptions: SubscriptionParsed[];
}
export interface WebhookDestinationParsed extends DestinationCommon {
  /** `kind` discriminates the union in TypeScript (`type` is any slug). */
  kind: 'webhook';
  settings: WebhookSettingsParsed;
}
export interface ActionDestinationParsed extends DestinationCommon {
  kind: 'action';
  settings: ActionSettingsParsed;
}
export type DestinationParsed = WebhookDestinationParsed | ActionDestinationParsed;

/** Every event through a webhook that has no subscriptions goes out as this one, so all services agree on its id. */
export const DEFAULT_WEBHOOK_SUBSCRIPTION_ID = 'default';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks the parts whose schema depends on `type` (settings, subscription requirements). Runs
 * even when other fields failed (`when`), on a possibly partial value, so that every error in a
 * destination is reported in one go.
 */
function checkTypedParts(d: Record<string, unknown>, ctx: z.RefinementCtx): void {
  if (typeof d.type !== 'string' || !DESTINATION_TYPE_PATTERN.test(d.type)) return;
  const isWebhook = d.type === 'webhook';
  const settings = d.settings === undefined ? {} : d.settings;
  if (isPlainObject(settings)) {
    const parsed = (isWebhook ? WebhookSettingsSchema : ActionSettingsSchema).safeParse(settings, { error: issueMessages });
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        if (issue.code === 'unrecognized_keys') {
          // Re-add as one issue per key; the loader turns the path into `settings.key: unknown field`.
          ctx.addIssue({ code: 'custom', path: ['settings', ...issue.path, ...issue.keys], message: 'unknown field' });
        } else {
          ctx.addIssue({ code: 'custom', path: ['settings', ...issue.path], message: issue.message });
        }
      }
    }
  }
  if (isWebhook || !Array.isArray(d.subscriptions)) return;
  d.subscriptions.forEach((s: unknown, i: number) => {
    if (!isPlainObject(s)) return;
    for (const field of ['subscribe', 'action'] as const) {
      if (s[field] === undefined) {
        ctx.addIssue({ code: 'custom', path: ['subscriptions', i, field], message: 'is required for action destinations' });
      }
    }
  });
}

// Refine + transform rather than a union: settings are validated by the schema the type
// selects, so errors name `settings.url` instead of an opaque "no union member matched".
export const DestinationSchema = DestinationInputSchema.superRefine(checkTypedParts, { when: () => true }).transform(
  (d, ctx): DestinationParsed => {
    const isWebhook = d.type === 'webhook';
    const settings = (isWebhook ? WebhookSettingsSchema : ActionSettingsSchema).safeParse(d.settings, { error: issueMessages });
    if (!settings.success) {
      // Unreachable after checkTypedParts; kept so a gap between the two can never pass silently.
      for (const issue of settings.error.issues) ctx.issues.push({ ...issue, path: ['settings', ...issue.path], input: undefined });
      return z.NEVER;
    }
    const subscriptions: SubscriptionParsed[] = d.subscriptions.map((s) => ({ ...s, subscribe: s.subscribe ?? 'all' }));
    if (isWebhook && subscriptions.length === 0) {
      subscriptions.push({ id: DEFAULT_WEBHOOK_SUBSCRIPTION_ID, name: 'All events', subscribe: 'all', mapping: {}, enabled: true });
    }
    return isWebhook
      ? { ...d, kind: 'webhook', settings: settings.data as WebhookSettingsParsed, subscriptions }
      : { ...d, kind: 'action', settings: settings.data as ActionSettingsParsed, subscriptions };
  },
);

// ---------------------------------------------------------------------------------------------
// Connections and the whole file

export const ConnectionSchema = z.strictObject({
  sourceId: nonEmpty(),
  destinationId: nonEmpty(),
  enabled: z.boolean().default(true),
  /** Filters for this source→destination pair only (Segment's scope), after the destination's own. */
  filters: FiltersSchema,
  /** Transformations for this pair only, after the source's own and before the filters. */
  transformations: z.array(TransformationSchema).default([]),
});

export const WorkspaceSchema = z.strictObject({
  spaces: z.array(SpaceSchema).default([]),
  sources: z.array(SourceSchema).default([]),
  destinations: z.array(DestinationSchema).default([]),
  connections: z.array(ConnectionSchema).default([]),
});

/** What a workspace file may contain (before defaults). */
export type WorkspaceFileInput = z.input<typeof WorkspaceSchema>;
/** A validated file, secrets still as references. */
export type WorkspaceParsed = z.output<typeof WorkspaceSchema>;

/**
 * Per-parse error map: friendlier messages than zod's defaults for the common cases.
 * Returning undefined keeps zod's message.
 */
export function issueMessages(issue: {
  code?: string;
  input?: unknown;
  expected?: string;
  note?: string;
  options?: unknown;
  issues?: readonly { message?: string }[];
}): string | undefined {
  // A bad record key (header name, identifier type): the key's own rule says what is wrong.
  if (issue.code === 'invalid_key' && issue.issues?.[0]?.message) return `invalid key: ${issue.issues[0].message}`;
  if (issue.code === 'invalid_type') {
    if (issue.input === undefined) return 'is required';
    const got = issue.input === null ? 'null' : Array.isArray(issue.input) ? 'a list' : typeof issue.input;
    if (issue.expected === 'record' || issue.expected === 'object') return `must be a mapping, got ${got}`;
    if (issue.expected === 'array') return `must be a list, got ${got}`;
    const expected = issue.expected === 'int' ? 'an integer' : `a ${issue.expected}`;
    return `must be ${expected}, got ${got}`;
  }
  if (issue.code === 'invalid_union' && issue.note === 'No matching discriminator' && Array.isArray(issue.options)) {
    return `must be one of: ${issue.options.join(', ')}`;
  }
  return undefined;
}
