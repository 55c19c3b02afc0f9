/**
 * Every call the screens make, in one place, typed by the generated schema.
 * Reads that feed an edit return the ETag; writes take it back as If-Match.
 */
import { api, body, unwrap, type ApiPaths } from './client'
import { ApiError } from './errors'
import type { Contact, ContactCreate, Customer, CustomerCreate, CustomerUpdate, DuplicateMatch, TokenOut } from './types'

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

/** The matches carried by a 409 `duplicate-customer` problem, or null for any other error. */
export function duplicatesOf(err: unknown): DuplicateMatch[] | null {
  if (!(err instanceof ApiError) || err.status !== 409 || err.slug !== 'duplicate-customer') return null
  const dups = err.extra.duplicates
  return Array.isArray(dups) ? (dups as DuplicateMatch[]) : []
}

export type { Customer }
