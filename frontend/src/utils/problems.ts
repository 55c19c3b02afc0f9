/**
 * What a person should read for a failed API call, in the UI language.
 *
 * The one place that turns problem details (RFC 9457, see docs/api.md) into text:
 * - a problem by its `type` (`https://kehu.dev/problems/<slug>`), else by its HTTP status;
 *   no answer at all → network failure / offline;
 * - a field error by pydantic's error `type` (plus the few messages the server's own validators
 *   use), worded with the field's localized label.
 * The server's English `detail` / `msg` is shown only when nothing better is known.
 */
import { i18n } from '@/i18n'
import { ApiError, fieldName, type FieldError } from '@/api/errors'
import { fieldLabel, valueText } from './labels'

/** `t` of vue-i18n (global or from `useI18n()`), as far as this module uses it. */
export type Translate = (key: string, named: Record<string, unknown>) => string

const globalT: Translate = (key, named) => i18n.global.t(key, named)

const PROBLEM_BASE = 'https://kehu.dev/problems/'

/** Problem types with a fixed message. */
const SLUG_MESSAGES: Record<string, string> = {
  forbidden: 'errors.forbidden',
  'not-found': 'errors.notFound',
  conflict: 'errors.conflict',
  'duplicate-customer': 'errors.duplicateCustomer',
  'precondition-failed': 'errors.preconditionFailed',
  'precondition-required': 'errors.preconditionRequired',
  'idempotency-key-reused': 'errors.idempotencyKeyReused',
  'idempotency-in-flight': 'errors.idempotencyInFlight',
  'payload-too-large': 'errors.payloadTooLarge',
  'method-not-allowed': 'errors.badRequest',
  'bad-request': 'errors.badRequest',
}
/** Problem types whose message depends on more than the type. */
const SPECIAL_SLUGS = new Set(['unauthorized', 'too-many-requests', 'validation-error', 'cap-exceeded'])

/** For answers whose type is unknown (or not a problem at all, e.g. a proxy's HTML page). */
const STATUS_SLUGS: Record<number, string> = {
  400: 'bad-request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not-found',
  405: 'method-not-allowed',
  409: 'conflict',
  412: 'precondition-failed',
  413: 'payload-too-large',
  422: 'validation-error',
  428: 'precondition-required',
  429: 'too-many-requests',
}

/** The endpoint that takes username + password: its 401 means wrong credentials, nothing more. */
const LOGIN_ENDPOINT = '/auth/token'

function problemKind(err: ApiError): string {
  const slug = err.type.startsWith(PROBLEM_BASE) ? err.type.slice(PROBLEM_BASE.length) : ''
  if (slug in SLUG_MESSAGES || SPECIAL_SLUGS.has(slug)) return slug
  if (err.status >= 500) return 'server-error'
  return STATUS_SLUGS[err.status] ?? ''
}

function waitText(seconds: number, t: Translate): string {
  return seconds < 120 ? t('errors.seconds', { n: seconds }) : t('errors.minutes', { n: Math.ceil(seconds / 60) })
}

function isOffline(): boolean {
  return typeof navigator !== 'undefined' && navigator.onLine === false
}

/** The message for any error thrown by an API call (anything else gets the generic one). */
export function describeProblem(err: unknown, t: Translate = globalT, entity = 'customer'): string {
  if (!(err instanceof ApiError)) return t('errors.generic', {})
  if (err.status === 0) return t(isOffline() ? 'errors.offline' : 'errors.network', {})
  const kind = problemKind(err)
  switch (kind) {
    case 'unauthorized':
      // neutral on purpose: never says whether the account exists
      return t(err.endpoint === LOGIN_ENDPOINT ? 'errors.badCredentials' : 'errors.sessionExpired', {})
    case 'too-many-requests': {
      const login = err.endpoint === LOGIN_ENDPOINT
      if (err.retryAfter === null) return t(login ? 'errors.loginThrottledNoWait' : 'errors.tooManyNoWait', {})
      return t(login ? 'errors.loginThrottled' : 'errors.tooMany', { wait: waitText(err.retryAfter, t) })
    }
    case 'validation-error':
      return err.errors.length ? summarizeFieldErrors(err.errors, t, entity) : t('errors.validation', {})
    case 'conflict':
      // e.g. "name taken": the field says more than the generic conflict text
      return err.errors.length ? summarizeFieldErrors(err.errors, t, entity) : t('errors.conflict', {})
    case 'cap-exceeded': {
      // owned customers (claim, assign, transfer, restore) or locked ones (lock): `cap` says how many
      const lock = err.endpoint.endsWith('/lock')
      const cap = typeof err.extra.cap === 'number' ? err.extra.cap : null
      if (cap === null) return t(lock ? 'errors.lockCapExceededNoCap' : 'errors.capExceededNoCap', {})
      return t(lock ? 'errors.lockCapExceeded' : 'errors.capExceeded', { cap })
    }
    case 'server-error':
      return t([502, 503, 504].includes(err.status) ? 'errors.unavailable' : 'errors.server', {})
    case '':
      return err.detail || t('errors.generic', {})
    default:
      return t(SLUG_MESSAGES[kind]!, {})
  }
}

/** The first field error's message, and how many there are when more than one. */
export function summarizeFieldErrors(errors: FieldError[], t: Translate = globalT, entity = 'customer'): string {
  const first = describeFieldError(errors[0]!, t, entity)
  return errors.length > 1 ? t('errors.andMore', { message: first, n: errors.length }) : first
}

// ----- field errors -----

/** The first number in a pydantic message ("at most 200 characters", "greater than or equal to -90"). */
function limitIn(msg: string): string | null {
  return /-?\d+(?:\.\d+)?/.exec(msg)?.[0] ?? null
}

/** The quoted values of a literal/enum message: "Input should be 'A', 'B' or 'C'" → A, B, C. */
function quotedIn(msg: string): string[] {
  return [...msg.matchAll(/'([^']*)'/g)].map((m) => m[1]!)
}

interface FieldContext {
  t: Translate
  /** The form field name (`phones`, `custom_fields.budget`) or null for the body as a whole. */
  name: string | null
  /** Its localized label. */
  field: string
  entity: string
}

function optionsText(values: string[], ctx: FieldContext): string {
  const sep = ctx.t('fieldErrors.separator', {})
  return values.map((v) => (ctx.name ? valueText(ctx.name, v) : v)).join(sep)
}

/** Messages the server's own validators use with `value_error` (app/schemas, app/services). */
const VALUE_ERRORS: [RegExp, (m: RegExpExecArray, ctx: FieldContext) => string][] = [
  [/^not a phone number: '(.*)'$/, (m, { t, field }) => t('fieldErrors.phone', { field, value: m[1] })],
  [/^birth date must lie between/, (_, { t, field }) => t('fieldErrors.birthDateRange', { field })],
  [/^lat and lng go together$/, (_, { t }) => t('fieldErrors.latLngPair', {})],
  [/time zone/, (_, { t, field }) => t('fieldErrors.needsTimeZone', { field })],
  [
    /^(?:(\w+) )?cannot be null$/,
    (m, { t, field, entity }) => t('fieldErrors.missing', { field: m[1] ? fieldLabel(m[1], entity) : field }),
  ],
  [/^(?:taken|.* is taken)$/, (_, { t, field }) => t('fieldErrors.taken', { field })],
  [/^no such /, (_, { t, field }) => t('fieldErrors.noSuchRecord', { field })],
  // follow-ups and visits (app/schemas/activity.py, app/services/activities.py)
  [/^a visit is planned for the future$/, (_, { t, field }) => t('fieldErrors.mustBeFuture', { field })],
  // team members (app/schemas/lifecycle.py)
  [/^must lie in the future$/, (_, { t, field }) => t('fieldErrors.mustBeFuture', { field })],
  [/^must come after the follow-up itself$/, (_, { t, field }) => t('fieldErrors.afterFollowUp', { field })],
  [/^must lie within the last (\d+) days/, (m, { t, field }) => t('fieldErrors.withinLastDays', { field, n: m[1] })],
  [/^not a contact of this customer$/, (_, { t }) => t('fieldErrors.notCustomersContact', {})],
  [/^a return visit needs a satisfaction score/, (_, { t }) => t('fieldErrors.satisfactionRequired', {})],
  [/^only a return visit takes a satisfaction score$/, (_, { t }) => t('fieldErrors.satisfactionOnlyReturnVisit', {})],
  [/^reminder offsets are minutes between 0 and (\d+)$/, (m, { t }) => t('fieldErrors.reminderOffsets', { n: m[1] })],
  [/^unknown kinds: (.*)$/, (m, { t }) => t('fieldErrors.unknownKinds', { kinds: m[1] })],
  [/^push endpoints are https URLs$/, (_, { t }) => t('fieldErrors.pushEndpoint', {})],
  // API keys (app/services/api_keys.py)
  [/^must be in the future$/, (_, { t, field }) => t('fieldErrors.mustBeFuture', { field })],
  [/^user \d+ does not exist or is not active$/, (_, { t, field }) => t('fieldErrors.inactiveUser', { field })],
  [/^give the key at least one scope$/, (_, { t, field }) => t('fieldErrors.missing', { field })],
  // webhook URLs (app/services/outbound.py validate_url) and event types (app/services/webhooks.py)
  [/^only https URLs are allowed$/, (_, { t, field }) => t('fieldErrors.httpsOnly', { field })],
  [/^only http or https URLs are allowed$/, (_, { t, field }) => t('fieldErrors.httpOrHttps', { field })],
  [/^credentials in the URL are not allowed$/, (_, { t, field }) => t('fieldErrors.urlCredentials', { field })],
  [/^URL longer than (\d+) characters$/, (m, { t, field }) => t('fieldErrors.tooLong', { field, n: m[1] })],
  // `<address>: <why>` — loopback, private, link-local, metadata, reserved... (`address_refusal`)
  [/^\S+: (?:.*\baddress\b.*|loopback name)$/, (_, { t, field }) => t('fieldErrors.refusedAddress', { field })],
  [
    /^(?:URL has no host|URL contains whitespace|not a (?:valid )?URL|invalid (?:port|host name|hex number|octal number|number)|IPv6 zone identifiers|unterminated IPv6|'.*' is not a valid IPv(?:4|6) address)/,
    (_, { t, field }) => t('fieldErrors.badUrl', { field }),
  ],
  [/^unknown event types (.*)$/, (m, { t }) => t('fieldErrors.unknownEventTypes', { types: m[1] })],
  [/^choose at least one$/, (_, { t, field }) => t('fieldErrors.chooseAtLeastOne', { field })],
  // auto-tag rule conditions (app/services/tag_rules.py)
  [/^expected a list of 1 to (\d+) values$/, (m, { t, field }) => t('fieldErrors.listOfValues', { field, n: m[1] })],
  [/^expected a single value$/, (_, { t, field }) => t('fieldErrors.singleValue', { field })],
  [/^\w+ takes no value$/, (_, { t }) => t('fieldErrors.takesNoValue', {})],
  [/^expected true or false$/, (_, { t, field }) => t('fieldErrors.notBoolean', { field })],
  [/^expected a string$/, (_, { t, field }) => t('fieldErrors.notText', { field })],
  [/^expected 1 to (\d+) characters$/, (m, { t, field }) => t('fieldErrors.textLength', { field, n: m[1] })],
  [/^\w+ does not apply to /, (_, { t }) => t('fieldErrors.opNotApplicable', {})],
  [/^expected a number$/, (_, { t, field }) => t('fieldErrors.notNumber', { field })],
  [/^expected a date/, (_, { t, field }) => t('fieldErrors.notDate', { field })],
  [/^expected text of at most (\d+)/, (m, { t, field }) => t('fieldErrors.tooLong', { field, n: m[1] })],
  [
    /^expected one of: (.*)$/,
    (m, ctx) => ctx.t('fieldErrors.oneOf', { field: ctx.field, options: optionsText(m[1]!.split(', '), ctx) }),
  ],
  [
    /^expected a list drawn from: (.*)$/,
    (m, ctx) => ctx.t('fieldErrors.someOf', { field: ctx.field, options: optionsText(m[1]!.split(', '), ctx) }),
  ],
]

function byType(type: string, msg: string, ctx: FieldContext): string | null {
  const { t, field } = ctx
  const n = limitIn(msg)
  switch (type) {
    case 'missing':
      return t('fieldErrors.missing', { field })
    case 'string_too_short':
      return n === null || Number(n) <= 1 ? t('fieldErrors.missing', { field }) : t('fieldErrors.tooShort', { field, n })
    case 'string_too_long':
      return n === null ? t('fieldErrors.tooLongNoLimit', { field }) : t('fieldErrors.tooLong', { field, n })
    case 'too_short':
      return n === null || Number(n) <= 1 ? t('fieldErrors.missing', { field }) : t('fieldErrors.tooFewItems', { field, n })
    case 'too_long':
      return n === null ? t('fieldErrors.tooLongNoLimit', { field }) : t('fieldErrors.tooManyItems', { field, n })
    case 'string_pattern_mismatch':
      return t('fieldErrors.pattern', { field })
    case 'literal_error':
    case 'enum': {
      const options = quotedIn(msg)
      return options.length
        ? t('fieldErrors.oneOf', { field, options: optionsText(options, ctx) })
        : t('fieldErrors.invalidChoice', { field })
    }
    case 'greater_than_equal':
      return n === null ? t('fieldErrors.outOfRange', { field }) : t('fieldErrors.atLeast', { field, n })
    case 'greater_than':
      return n === null ? t('fieldErrors.outOfRange', { field }) : t('fieldErrors.greaterThan', { field, n })
    case 'less_than_equal':
      return n === null ? t('fieldErrors.outOfRange', { field }) : t('fieldErrors.atMost', { field, n })
    case 'less_than':
      return n === null ? t('fieldErrors.outOfRange', { field }) : t('fieldErrors.lessThan', { field, n })
    case 'int_parsing':
    case 'int_type':
    case 'int_from_float':
      return t('fieldErrors.notInteger', { field })
    case 'float_parsing':
    case 'float_type':
    case 'finite_number':
      return t('fieldErrors.notNumber', { field })
    case 'date_parsing':
    case 'date_type':
    case 'date_from_datetime_parsing':
    case 'date_from_datetime_inexact':
      return t('fieldErrors.notDate', { field })
    case 'datetime_parsing':
    case 'datetime_type':
    case 'datetime_from_date_parsing':
      return t('fieldErrors.notDateTime', { field })
    case 'bool_parsing':
    case 'bool_type':
      return t('fieldErrors.notBoolean', { field })
    case 'extra_forbidden':
    case 'unknown_field':
      return t('fieldErrors.unknownField', { field })
    case 'value_error':
    case 'assertion_error':
      for (const [pattern, message] of VALUE_ERRORS) {
        const m = pattern.exec(msg)
        if (m) return message(m, ctx)
      }
      return null
    default:
      return null
  }
}

/**
 * The message for one field error, e.g. `{"loc": ["body","phones",0], "msg": "Value error, not a
 * phone number: 'abc'", "type": "value_error"}` → “abc”不是有效的电话号码.
 * `entity` picks the labels (`customer`, `contact`, `followUp` or `visit`).
 */
export function describeFieldError(error: FieldError, t: Translate = globalT, entity = 'customer'): string {
  const name = fieldName(error)
  const field = name ? fieldLabel(name, entity) : t('fieldErrors.thisField', {})
  // pydantic prefixes what a validator raised ("Value error, ...", "Assertion failed, ...")
  const msg = String(error.msg ?? '').replace(/^(?:Value error|Assertion failed), /, '')
  const ctx: FieldContext = { t, name, field, entity }
  const known = byType(error.type ?? '', msg, ctx)
  if (known) return known
  if (!msg) return t('fieldErrors.invalid', { field })
  return name ? t('fieldErrors.fallback', { field, msg }) : msg
}
