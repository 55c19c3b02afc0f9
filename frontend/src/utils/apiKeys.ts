/**
 * API keys for integrations (SPEC J1, app/services/api_keys.py): the resources a key's scopes name,
 * each with `<resource>:read` (GET) and `<resource>:write` (changes) — analytics read only — and how
 * a key's state, scopes and token prefix are shown.
 */
import type { ApiKey } from '@/api/types'
import { i18n } from '@/i18n'

export type ScopeAccess = 'read' | 'write'

/** The server's `RESOURCES`, in its order (`SCOPES` is every resource × read / write). */
export const API_KEY_RESOURCES = [
  'customers',
  'activities',
  'opportunities',
  'contracts',
  'orders',
  'analytics',
  'notifications',
  'config',
  'org',
] as const
export type ApiKeyResource = (typeof API_KEY_RESOURCES)[number]

/** Resources whose keys may only read (`READ_ONLY_RESOURCES`). */
export const READ_ONLY_RESOURCES: ReadonlySet<string> = new Set(['analytics'])

export function accessesOf(resource: string): ScopeAccess[] {
  return READ_ONLY_RESOURCES.has(resource) ? ['read'] : ['read', 'write']
}

/** `{customers: ['read'], ...}` → `['customers:read', ...]` in the server's order. */
export function scopesOf(picked: Record<string, ScopeAccess[]>): string[] {
  return API_KEY_RESOURCES.flatMap((r) => accessesOf(r).filter((a) => picked[r]?.includes(a)).map((a) => `${r}:${a}`))
}

/** A key's scopes by resource, in the server's order (unknown resources after them). */
export function scopesByResource(scopes: readonly string[]): { resource: string; access: ScopeAccess[] }[] {
  const by = new Map<string, ScopeAccess[]>()
  for (const scope of scopes) {
    const [resource = scope, access] = scope.split(':')
    if (access !== 'read' && access !== 'write') continue
    by.set(resource, [...(by.get(resource) ?? []), access])
  }
  const order = (r: string) => {
    const i = (API_KEY_RESOURCES as readonly string[]).indexOf(r)
    return i < 0 ? API_KEY_RESOURCES.length : i
  }
  return [...by.entries()].sort(([a], [b]) => order(a) - order(b)).map(([resource, access]) => ({ resource, access }))
}

/** `客户 · 读写`: one compact tag per resource. */
export function scopeTagText(resource: string, access: ScopeAccess[]): string {
  const { t, te } = i18n.global
  const name = te(`apiKeys.resources.${resource}`) ? t(`apiKeys.resources.${resource}`) : resource
  const level = access.includes('read') && access.includes('write') ? 'readWrite' : access.includes('write') ? 'writeOnly' : 'readOnly'
  return `${name} · ${t(`apiKeys.access.${level}`)}`
}

export type ApiKeyState = 'active' | 'expired' | 'revoked'

export function keyState(key: ApiKey, now: Date = new Date()): ApiKeyState {
  if (key.revoked_at) return 'revoked'
  if (key.expires_at && new Date(key.expires_at).getTime() <= now.getTime()) return 'expired'
  return 'active'
}

/** The public part of a key as it starts: `kehu_<prefix>_…`. */
export const maskedToken = (prefix: string) => `kehu_${prefix}_…`
