/**
 * Every call the screens make, in one place, typed by the generated schema.
 * Reads that feed an edit return the ETag; writes take it back as If-Match.
 */
import { api, body, newIdempotencyKey, unwrap, type ApiPaths } from './client'
import { ApiError } from './errors'
import type {
  ApiKeyCreate,
  Contact,
  ContactCreate,
  Customer,
  CustomerCreate,
  CustomerUpdate,
  DuplicateMatch,
  FollowUpCreate,
  NotificationSettingsUpdate,
  OpportunityCreate,
  PoolActionResult,
  TeamMemberIn,
  TransferIn,
  PaymentIn,
  PaymentPlanIn,
  TagRuleCreate,
  TagRulePreviewIn,
  TagRuleUpdate,
  ContractAction,
  DuplicatePolicy,
  ImportEntity,
  ImportPreview,
  ImportRecord,
  TokenOut,
  VisitComplete,
  VisitCreate,
  VisitReschedule,
  WebhookCreate,
  WebhookDeliveryStatus,
  WebhookUpdate,
} from './types'

export type CustomerListQuery = NonNullable<ApiPaths['/customers']['get']['parameters']['query']>

export async function login(username: string, password: string): Promise<TokenOut> {
  return body(
    api.POST('/auth/token', {
      body: { username, password, grant_type: 'password' },
      bodySerializer: (form) => {
        const params = new URLSearchParams()
        for (const [k, v] of Object.entries(form)) if (v !== undefined && v !== null) params.set(k, String(v))
        return params
      },
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    }),
  )
}

export async function logout(refreshToken: string): Promise<void> {
  await unwrap(api.POST('/auth/logout', { body: { refresh_token: refreshToken } }))
}

export const fetchMe = () => body(api.GET('/me'))

export const listCustomers = (query: CustomerListQuery) => body(api.GET('/customers', { params: { query } }))

export const customerFacets = () => body(api.GET('/customers/facets'))

export interface DuplicateQuery {
  name?: string
  phones?: string[]
  email?: string
  /** The customer being edited (it is not its own duplicate). */
  excludeId?: number
}

export async function checkDuplicates(q: DuplicateQuery): Promise<DuplicateMatch[]> {
  const query: NonNullable<ApiPaths['/customers/duplicates']['get']['parameters']['query']> = {}
  if (q.name) query.name = q.name
  if (q.phones?.length) query.phone = q.phones
  if (q.email) query.email = q.email
  if (q.excludeId !== undefined) query.exclude_id = q.excludeId
  const data = await body(api.GET('/customers/duplicates', { params: { query } }))
  return data.matches
}

export const getCustomer = (id: number) =>
  unwrap(api.GET('/customers/{customer_id}', { params: { path: { customer_id: id } } }))

export const createCustomer = (payload: CustomerCreate) => body(api.POST('/customers', { body: payload }))

export const updateCustomer = (id: number, payload: CustomerUpdate, etag: string) =>
  unwrap(
    api.PATCH('/customers/{customer_id}', {
      params: { path: { customer_id: id } },
      headers: { 'If-Match': etag },
      body: payload,
    }),
  )

export async function deleteCustomer(id: number, etag: string): Promise<void> {
  await unwrap(
    api.DELETE('/customers/{customer_id}', { params: { path: { customer_id: id } }, headers: { 'If-Match': etag } }),
  )
}

export const customerTimeline = (id: number, cursor?: string | null) =>
  body(
    api.GET('/customers/{customer_id}/timeline', {
      params: { path: { customer_id: id }, query: { limit: 30, ...(cursor ? { cursor } : {}) } },
    }),
  )

export const listContacts = (customerId: number) =>
  body(api.GET('/customers/{customer_id}/contacts', { params: { path: { customer_id: customerId } } }))

export const createContact = (customerId: number, payload: ContactCreate): Promise<Contact> =>
  body(api.POST('/customers/{customer_id}/contacts', { params: { path: { customer_id: customerId } }, body: payload }))

export const getContact = (id: number) => unwrap(api.GET('/contacts/{contact_id}', { params: { path: { contact_id: id } } }))

export async function deleteContact(id: number, etag: string): Promise<void> {
  await unwrap(api.DELETE('/contacts/{contact_id}', { params: { path: { contact_id: id } }, headers: { 'If-Match': etag } }))
}

export const listCustomFields = () => body(api.GET('/custom-fields'))

export const listTagGroups = () => body(api.GET('/tag-groups'))

// ----- follow-ups (D1) -----

export const customerFollowUps = (customerId: number, cursor?: string | null) =>
  body(
    api.GET('/customers/{customer_id}/follow-ups', {
      params: { path: { customer_id: customerId }, query: { limit: 20, ...(cursor ? { cursor } : {}) } },
    }),
  )

/** `idempotencyKey`: the key drawn when the rep saved (a queued retry reuses it, SPEC K3). */
export const createFollowUp = (payload: FollowUpCreate, idempotencyKey: string = newIdempotencyKey()) =>
  body(api.POST('/follow-ups', { body: payload, headers: { 'Idempotency-Key': idempotencyKey } }))

export const getFollowUp = (id: number) =>
  body(api.GET('/follow-ups/{follow_up_id}', { params: { path: { follow_up_id: id } } }))

// ----- visits (D2) -----

export type VisitListQuery = NonNullable<ApiPaths['/visits']['get']['parameters']['query']>

export const listVisits = (query: VisitListQuery) => body(api.GET('/visits', { params: { query } }))

export const createVisit = (payload: VisitCreate) => body(api.POST('/visits', { body: payload }))

export const getVisit = (id: number) => unwrap(api.GET('/visits/{visit_id}', { params: { path: { visit_id: id } } }))

export const rescheduleVisit = (id: number, payload: VisitReschedule, etag: string) =>
  unwrap(
    api.POST('/visits/{visit_id}/reschedule', {
      params: { path: { visit_id: id } },
      headers: { 'If-Match': etag },
      body: payload,
    }),
  )

export const completeVisit = (id: number, payload: VisitComplete, etag: string, idempotencyKey: string = newIdempotencyKey()) =>
  unwrap(
    api.POST('/visits/{visit_id}/complete', {
      params: { path: { visit_id: id } },
      headers: { 'If-Match': etag, 'Idempotency-Key': idempotencyKey },
      body: payload,
    }),
  )

export const cancelVisit = (id: number, reason: string | null, etag: string) =>
  unwrap(
    api.POST('/visits/{visit_id}/cancel', {
      params: { path: { visit_id: id } },
      headers: { 'If-Match': etag },
      body: reason ? { reason } : {},
    }),
  )

// ----- notifications (D4) -----

export const listNotifications = (cursor?: string | null, unread?: boolean) =>
  body(
    api.GET('/notifications', {
      params: { query: { limit: 30, ...(cursor ? { cursor } : {}), ...(unread ? { unread: true } : {}) } },
    }),
  )

export const unreadCount = async (): Promise<number> => (await body(api.GET('/notifications/unread-count'))).count

export async function markNotificationRead(id: number): Promise<void> {
  await unwrap(api.POST('/notifications/{notification_id}/read', { params: { path: { notification_id: id } } }))
}

export const markAllNotificationsRead = () => body(api.POST('/notifications/read-all'))

export const getNotificationSettings = () => body(api.GET('/notification-settings'))

export const saveNotificationSettings = (payload: NotificationSettingsUpdate) =>
  body(api.PUT('/notification-settings', { body: payload }))

// ----- push (K3) -----

export const vapidPublicKey = async (): Promise<string> => (await body(api.GET('/push/vapid-public-key'))).public_key

export const savePushSubscription = (endpoint: string, keys: { p256dh: string; auth: string }) =>
  body(api.POST('/push/subscriptions', { body: { endpoint, keys, user_agent: navigator.userAgent.slice(0, 300) } }))

export async function deletePushSubscription(endpoint: string): Promise<void> {
  await unwrap(api.DELETE('/push/subscriptions', { params: { query: { endpoint } } }))
}

// ----- today (D5) -----

export const fetchToday = () => body(api.GET('/today'))

// ----- opportunities & funnel (E1, E2) -----

export const listPipelines = () => body(api.GET('/pipelines'))

export type OpportunityListQuery = NonNullable<ApiPaths['/opportunities']['get']['parameters']['query']>

export const listOpportunities = (query: OpportunityListQuery) => body(api.GET('/opportunities', { params: { query } }))

export const getOpportunity = (id: number) =>
  unwrap(api.GET('/opportunities/{opportunity_id}', { params: { path: { opportunity_id: id } } }))

export const createOpportunity = (payload: OpportunityCreate) => body(api.POST('/opportunities', { body: payload }))

export const moveOpportunity = (id: number, stageId: number, etag: string) =>
  unwrap(
    api.POST('/opportunities/{opportunity_id}/stage', {
      params: { path: { opportunity_id: id } },
      headers: { 'If-Match': etag },
      body: { stage_id: stageId },
    }),
  )

export const winOpportunity = (id: number, amount: string | null, note: string | null, etag: string) =>
  unwrap(
    api.POST('/opportunities/{opportunity_id}/win', {
      params: { path: { opportunity_id: id } },
      headers: { 'If-Match': etag },
      body: { ...(amount ? { amount } : {}), ...(note ? { note } : {}) },
    }),
  )

export const loseOpportunity = (id: number, reasonId: number, note: string | null, etag: string) =>
  unwrap(
    api.POST('/opportunities/{opportunity_id}/lose', {
      params: { path: { opportunity_id: id } },
      headers: { 'If-Match': etag },
      body: { lost_reason_id: reasonId, ...(note ? { note } : {}) },
    }),
  )

export const opportunityHistory = (id: number) =>
  body(api.GET('/opportunities/{opportunity_id}/history', { params: { path: { opportunity_id: id } } }))

export const listLostReasons = () => body(api.GET('/lost-reasons'))

export const fetchFunnel = (query: NonNullable<ApiPaths['/funnel']['get']['parameters']['query']>) =>
  body(api.GET('/funnel', { params: { query } }))

export const fetchForecast = (from: string, to: string, pipelineId?: number) =>
  body(api.GET('/forecast', { params: { query: { from, to, ...(pipelineId ? { pipeline_id: pipelineId } : {}) } } }))

// ----- dashboard & targets (F1) -----

export type DashboardPeriod = 'day' | 'week' | 'month' | 'quarter'

export const fetchBrief = (period: DashboardPeriod, date?: string) =>
  body(api.GET('/dashboard/brief', { params: { query: { period, ...(date ? { date } : {}) } } }))

export const fetchTrend = (metric: string, granularity: 'day' | 'week' | 'month', from: string, to: string) =>
  body(api.GET('/dashboard/trend', { params: { query: { metric, granularity, from, to } } }))

export const fetchRanking = (metric: string, period: DashboardPeriod, date?: string) =>
  body(api.GET('/dashboard/ranking', { params: { query: { metric, period, ...(date ? { date } : {}) } } }))

export const listTargets = (month: string) => body(api.GET('/targets', { params: { query: { month } } }))

// ----- customer analytics (H1–H9) -----

type AnalyticsQuery<P extends keyof ApiPaths> = ApiPaths[P] extends { get: { parameters: { query?: infer Q } } }
  ? NonNullable<Q>
  : never

export type PersonaQuery = AnalyticsQuery<'/analytics/persona'>
export type SegmentsQuery = AnalyticsQuery<'/analytics/segments'>
export type RfmQuery = AnalyticsQuery<'/analytics/rfm'>
export type ValueMatrixQuery = AnalyticsQuery<'/analytics/value-matrix'>
export type PyramidQuery = AnalyticsQuery<'/analytics/pyramid'>
export type RetentionQuery = AnalyticsQuery<'/analytics/retention'>
export type BasketQuery = AnalyticsQuery<'/analytics/basket'>
export type LeadScoresQuery = AnalyticsQuery<'/analytics/lead-scores'>
export type ProductsQuery = AnalyticsQuery<'/analytics/products'>

export const analyticsDimensions = () => body(api.GET('/analytics/dimensions'))
export const fetchPersona = (query: PersonaQuery) => body(api.GET('/analytics/persona', { params: { query } }))
export const fetchSegments = (query: SegmentsQuery) => body(api.GET('/analytics/segments', { params: { query } }))
export const fetchRfm = (query: RfmQuery) => body(api.GET('/analytics/rfm', { params: { query } }))
export const fetchValueMatrix = (query: ValueMatrixQuery) => body(api.GET('/analytics/value-matrix', { params: { query } }))
export const fetchPyramid = (query: PyramidQuery) => body(api.GET('/analytics/pyramid', { params: { query } }))
export const fetchRetention = (query: RetentionQuery) => body(api.GET('/analytics/retention', { params: { query } }))
export const fetchBasket = (query: BasketQuery) => body(api.GET('/analytics/basket', { params: { query } }))
export const fetchLeadScores = (query: LeadScoresQuery) => body(api.GET('/analytics/lead-scores', { params: { query } }))
export const fetchProducts = (query: ProductsQuery) => body(api.GET('/analytics/products', { params: { query } }))

export const customerRecommendations = (customerId: number) =>
  body(api.GET('/customers/{customer_id}/recommendations', { params: { path: { customer_id: customerId } } }))

// ----- auto-tag rules (H10, config.manage) -----

export const listTagRules = () => body(api.GET('/tag-rules'))

export const getTagRule = (id: number) => unwrap(api.GET('/tag-rules/{rule_id}', { params: { path: { rule_id: id } } }))

export const createTagRule = (payload: TagRuleCreate) => unwrap(api.POST('/tag-rules', { body: payload }))

export const updateTagRule = (id: number, payload: TagRuleUpdate, etag: string) =>
  unwrap(api.PATCH('/tag-rules/{rule_id}', { params: { path: { rule_id: id } }, body: payload, headers: { 'If-Match': etag } }))

export async function deleteTagRule(id: number, etag: string): Promise<void> {
  await unwrap(api.DELETE('/tag-rules/{rule_id}', { params: { path: { rule_id: id } }, headers: { 'If-Match': etag } }))
}

/** Who an unsaved rule would change now (counts and the first 50 each way). */
export const previewTagRule = (payload: TagRulePreviewIn) => body(api.POST('/tag-rules/preview', { body: payload }))

export const runTagRule = (id: number) => body(api.POST('/tag-rules/{rule_id}/run', { params: { path: { rule_id: id } } }))

// ----- API keys for integrations (J1, integration.manage) -----

/** Every key, revoked ones included, oldest first (never the secret). */
export const listApiKeys = () => body(api.GET('/api-keys'))

/** A new key: the answer holds its `token`, which the server never shows again. */
export const createApiKey = (payload: ApiKeyCreate) => body(api.POST('/api-keys', { body: payload }))

/** Revoke for good (revoking twice is harmless). */
export const revokeApiKey = (id: number) => body(api.POST('/api-keys/{key_id}/revoke', { params: { path: { key_id: id } } }))

// ----- webhooks (J2, integration.manage) -----

/** `{type: what it reports}`, in the server's order. */
export const listWebhookEventTypes = () => body(api.GET('/webhook-event-types'))

/** Every subscription, oldest first (never the secret). */
export const listWebhooks = () => body(api.GET('/webhooks'))

export const getWebhook = (id: number) => unwrap(api.GET('/webhooks/{webhook_id}', { params: { path: { webhook_id: id } } }))

/** A new subscription: the answer holds its signing `secret`, which the server never shows again. */
export const createWebhook = (payload: WebhookCreate) => unwrap(api.POST('/webhooks', { body: payload }))

/** Name, URL, event types; `enabled: true` re-enables a disabled one (its run of failures restarts). */
export const updateWebhook = (id: number, payload: WebhookUpdate, etag: string) =>
  unwrap(api.PATCH('/webhooks/{webhook_id}', { params: { path: { webhook_id: id } }, body: payload, headers: { 'If-Match': etag } }))

/** Removes the subscription with its delivery log. */
export async function deleteWebhook(id: number, etag: string): Promise<void> {
  await unwrap(api.DELETE('/webhooks/{webhook_id}', { params: { path: { webhook_id: id } }, headers: { 'If-Match': etag } }))
}

/** A new signing secret (shown once); the old one stops signing at once. */
export const rotateWebhookSecret = (id: number) =>
  unwrap(api.POST('/webhooks/{webhook_id}/rotate-secret', { params: { path: { webhook_id: id } } }))

export interface WebhookDeliveryQuery {
  status?: WebhookDeliveryStatus | null
  /** Older than this delivery (the last one shown: "load more"). */
  before_id?: number | null
  limit?: number
}

/** The delivery log, newest first, each with every attempt (newest first). */
export const listWebhookDeliveries = (id: number, query: WebhookDeliveryQuery = {}) =>
  body(
    api.GET('/webhooks/{webhook_id}/deliveries', {
      params: {
        path: { webhook_id: id },
        query: {
          ...(query.status ? { status: query.status } : {}),
          ...(query.before_id ? { before_id: query.before_id } : {}),
          ...(query.limit ? { limit: query.limit } : {}),
        },
      },
    }),
  )

/** Send a delivery again now (same event id) and log it: the answer is the attempt made. */
export const redeliverWebhook = (id: number, deliveryId: number) =>
  body(
    api.POST('/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver', {
      params: { path: { webhook_id: id, delivery_id: deliveryId } },
    }),
  )

// ----- contracts (E3) -----

export type ContractListQuery = NonNullable<ApiPaths['/contracts']['get']['parameters']['query']>

export const listContracts = (query: ContractListQuery) => body(api.GET('/contracts', { params: { query } }))

export const getContract = (id: number) =>
  unwrap(api.GET('/contracts/{contract_id}', { params: { path: { contract_id: id } } }))

/** submit / approve / reject / sign / activate / complete / terminate / void, with an optional comment. */
export function contractTransition(id: number, action: ContractAction, comment: string | null, etag: string) {
  const init = {
    params: { path: { contract_id: id } },
    headers: { 'If-Match': etag },
    body: comment ? { comment } : {},
  }
  switch (action) {
    case 'submit':
      return unwrap(api.POST('/contracts/{contract_id}/submit', init))
    case 'approve':
      return unwrap(api.POST('/contracts/{contract_id}/approve', init))
    case 'reject':
      return unwrap(api.POST('/contracts/{contract_id}/reject', init))
    case 'sign':
      return unwrap(api.POST('/contracts/{contract_id}/sign', init))
    case 'activate':
      return unwrap(api.POST('/contracts/{contract_id}/activate', init))
    case 'complete':
      return unwrap(api.POST('/contracts/{contract_id}/complete', init))
    case 'terminate':
      return unwrap(api.POST('/contracts/{contract_id}/terminate', init))
    case 'void':
      return unwrap(api.POST('/contracts/{contract_id}/void', init))
  }
}

export const addPaymentPlan = (id: number, payload: PaymentPlanIn) =>
  body(api.POST('/contracts/{contract_id}/payment-plans', { params: { path: { contract_id: id } }, body: payload }))

export const recordPayment = (id: number, payload: PaymentIn) =>
  body(api.POST('/contracts/{contract_id}/payments', { params: { path: { contract_id: id } }, body: payload }))

// ----- orders -----

export type OrderListQuery = NonNullable<ApiPaths['/orders']['get']['parameters']['query']>

export const listOrders = (query: OrderListQuery) => body(api.GET('/orders', { params: { query } }))

// ----- imports (I1) -----

export interface ImportUpload {
  file: File
  entity: ImportEntity
  policy: DuplicatePolicy
  /** Column index (from 0) → field key; null = the mapping the headers suggest. */
  mapping: Record<string, string> | null
}

function importForm(upload: ImportUpload, dryRun: boolean): FormData {
  const form = new FormData()
  form.set('file', upload.file, upload.file.name)
  form.set('entity', upload.entity)
  form.set('duplicate_policy', upload.policy)
  if (upload.mapping) form.set('mapping', JSON.stringify(upload.mapping))
  form.set('dry_run', dryRun ? 'true' : 'false')
  return form
}

/** What the import would do (nothing is written): headers, mapping, counts, the first row problems. */
export const previewImport = (upload: ImportUpload) =>
  body(
    api.POST('/imports', {
      // the generated type says `file: string` (OpenAPI's binary); the real body is the form
      body: importForm(upload, true) as unknown as ApiPaths['/imports']['post']['requestBody']['content']['multipart/form-data'],
      bodySerializer: (form) => form as unknown as FormData,
    }),
  ) as Promise<ImportPreview>

/**
 * Queue the import. `idempotencyKey` stays the same for every retry of one "start" (a bad connection
 * can lose the answer, not the upload): the server then answers with the import it already queued.
 */
export const startImport = (upload: ImportUpload, idempotencyKey: string = newIdempotencyKey()) =>
  body(
    api.POST('/imports', {
      body: importForm(upload, false) as unknown as ApiPaths['/imports']['post']['requestBody']['content']['multipart/form-data'],
      bodySerializer: (form) => form as unknown as FormData,
      headers: { 'Idempotency-Key': idempotencyKey },
    }),
  ) as Promise<ImportRecord>

/** Your imports, newest first. */
export const listImports = (cursor?: string | null, limit = 20) =>
  body(api.GET('/imports', { params: { query: { limit, ...(cursor ? { cursor } : {}) } } }))

export const getImport = (id: number) => body(api.GET('/imports/{import_id}', { params: { path: { import_id: id } } }))

export interface DownloadedFile {
  blob: Blob
  /** From `Content-Disposition`, or null when the server gave none. */
  fileName: string | null
}

async function downloaded(call: Promise<{ data?: unknown; error?: unknown; response: Response }>): Promise<DownloadedFile> {
  const { data, response } = await unwrap(call)
  return { blob: data as Blob, fileName: fileNameOf(response.headers.get('Content-Disposition')) }
}

/** `attachment; filename="x.csv"` (or RFC 6266 `filename*=UTF-8''…`) → the file name. */
export function fileNameOf(disposition: string | null): string | null {
  if (!disposition) return null
  const extended = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(disposition)
  if (extended?.[1]) {
    try {
      return decodeURIComponent(extended[1].trim())
    } catch {
      /* fall through to the plain name */
    }
  }
  const plain = /filename\s*=\s*"([^"]*)"|filename\s*=\s*([^;]+)/.exec(disposition)
  const name = (plain?.[1] ?? plain?.[2] ?? '').trim()
  return name || null
}

/** The rows of an import that were not imported (or were skipped as duplicates), as CSV. */
export const downloadImportErrors = (id: number, lang: 'zh-CN' | 'en') =>
  downloaded(
    api.GET('/imports/{import_id}/errors', { params: { path: { import_id: id }, query: { lang } }, parseAs: 'blob' }),
  )

// ----- exports (I2) -----

export type ExportFormat = 'csv' | 'xlsx'
export type CustomerExportQuery = NonNullable<ApiPaths['/exports/customers']['get']['parameters']['query']>
export type OpportunityExportQuery = NonNullable<ApiPaths['/exports/opportunities']['get']['parameters']['query']>
export type ContractExportQuery = NonNullable<ApiPaths['/exports/contracts']['get']['parameters']['query']>
export type OrderExportQuery = NonNullable<ApiPaths['/exports/orders']['get']['parameters']['query']>

export const exportCustomers = (query: CustomerExportQuery) =>
  downloaded(api.GET('/exports/customers', { params: { query }, parseAs: 'blob' }))
export const exportOpportunities = (query: OpportunityExportQuery) =>
  downloaded(api.GET('/exports/opportunities', { params: { query }, parseAs: 'blob' }))
export const exportContracts = (query: ContractExportQuery) =>
  downloaded(api.GET('/exports/contracts', { params: { query }, parseAs: 'blob' }))
export const exportOrders = (query: OrderExportQuery) =>
  downloaded(api.GET('/exports/orders', { params: { query }, parseAs: 'blob' }))

// ----- pools (C1–C6) -----

export const listPools = () => body(api.GET('/pools'))

export type PoolCustomerQuery = NonNullable<ApiPaths['/pools/{pool_id}/customers']['get']['parameters']['query']>

export const listPoolCustomers = (poolId: number, query: PoolCustomerQuery) =>
  body(api.GET('/pools/{pool_id}/customers', { params: { path: { pool_id: poolId }, query } }))

/**
 * Claim, assign or move: the per-customer results. When nothing succeeded the server answers 409
 * with the same `results`; that answer is returned too (see `poolActionOf`), anything else throws.
 */
async function poolAction(call: Promise<{ data?: PoolActionResult; error?: unknown; response: Response }>): Promise<PoolActionResult> {
  try {
    return await body(call)
  } catch (err) {
    const refused = poolActionOf(err)
    if (refused) return refused
    throw err
  }
}

export const claimFromPool = (poolId: number, customerIds: number[]) =>
  poolAction(api.POST('/pools/{pool_id}/claim', { params: { path: { pool_id: poolId } }, body: { customer_ids: customerIds } }))

export const assignFromPool = (poolId: number, customerIds: number[], ownerId: number) =>
  poolAction(
    api.POST('/pools/{pool_id}/assign', {
      params: { path: { pool_id: poolId } },
      body: { customer_ids: customerIds, owner_id: ownerId },
    }),
  )

export const moveToPool = (poolId: number, customerIds: number[], toPoolId: number) =>
  poolAction(
    api.POST('/pools/{pool_id}/move', {
      params: { path: { pool_id: poolId } },
      body: { customer_ids: customerIds, to_pool_id: toPoolId },
    }),
  )

export const poolStats = (poolId: number, from: string, to: string) =>
  body(api.GET('/pools/{pool_id}/stats', { params: { path: { pool_id: poolId }, query: { from, to } } }))

export const releaseCustomer = (customerId: number, poolId: number, reason: string) =>
  unwrap(
    api.POST('/customers/{customer_id}/release', {
      params: { path: { customer_id: customerId } },
      body: { pool_id: poolId, reason },
    }),
  )

/** The per-customer results carried by a 409 answer to claim / assign / move, or null. */
export function poolActionOf(err: unknown): PoolActionResult | null {
  if (!(err instanceof ApiError) || err.status !== 409 || !Array.isArray(err.extra.results)) return null
  const results = err.extra.results as PoolActionResult['results']
  const refused = results.filter((r) => r.outcome === 'refused').length
  return { results, succeeded: results.length - refused, refused }
}

// ----- lifecycle: lock, recycle bin, transfer, team, merge (B4, B7–B10) -----

export const lockCustomer = (id: number) =>
  unwrap(api.POST('/customers/{customer_id}/lock', { params: { path: { customer_id: id } } }))

export const unlockCustomer = (id: number) =>
  unwrap(api.POST('/customers/{customer_id}/unlock', { params: { path: { customer_id: id } } }))

/** Freeze or abandon: the customer goes to the recycle bin with the reason. */
export async function binCustomer(id: number, kind: 'freeze' | 'abandon', reason: string): Promise<void> {
  const init = { params: { path: { customer_id: id } }, body: { reason } }
  await unwrap(
    kind === 'freeze' ? api.POST('/customers/{customer_id}/freeze', init) : api.POST('/customers/{customer_id}/abandon', init),
  )
}

export type RecycleBinQuery = NonNullable<ApiPaths['/recycle-bin']['get']['parameters']['query']>

export const listRecycleBin = (query: RecycleBinQuery) => body(api.GET('/recycle-bin', { params: { query } }))

export const restoreCustomer = (id: number) =>
  body(api.POST('/customers/{customer_id}/restore', { params: { path: { customer_id: id } } }))

export const transferCustomers = (payload: TransferIn) => body(api.POST('/customers/transfer', { body: payload }))

export const listTeamMembers = (customerId: number) =>
  body(api.GET('/customers/{customer_id}/members', { params: { path: { customer_id: customerId } } }))

export const putTeamMember = (customerId: number, payload: TeamMemberIn) =>
  body(api.POST('/customers/{customer_id}/members', { params: { path: { customer_id: customerId } }, body: payload }))

export async function removeTeamMember(customerId: number, userId: number): Promise<void> {
  await unwrap(
    api.DELETE('/customers/{customer_id}/members/{user_id}', { params: { path: { customer_id: customerId, user_id: userId } } }),
  )
}

/** Merge the duplicate `otherId` into customer `id`. */
export const mergeCustomer = (id: number, otherId: number) =>
  unwrap(api.POST('/customers/{customer_id}/merge', { params: { path: { customer_id: id } }, body: { other_id: otherId } }))

// ----- people (transfer, assign, team members) -----

/**
 * Active colleagues by name, for any signed-in user, at most `limit` (≤ 200) ordered by name;
 * `in_scope` says whether the user's data scope covers them (a transfer's new owner must be).
 */
export const userDirectory = (q?: string, limit?: number) =>
  body(api.GET('/users/directory', { params: { query: { ...(q ? { q } : {}), ...(limit ? { limit } : {}) } } }))

/** Every user, inactive ones included, with their roles (organisation admins: `org.manage`). */
export const listUsers = () => body(api.GET('/users'))

/** The matches carried by a 409 `duplicate-customer` problem, or null for any other error. */
export function duplicatesOf(err: unknown): DuplicateMatch[] | null {
  if (!(err instanceof ApiError) || err.status !== 409 || err.slug !== 'duplicate-customer') return null
  const dups = err.extra.duplicates
  return Array.isArray(dups) ? (dups as DuplicateMatch[]) : []
}

export type { Customer }
