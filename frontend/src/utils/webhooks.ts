/**
 * Webhooks (SPEC J2, app/services/webhooks.py): how event types, subscriptions and deliveries are
 * shown — names and descriptions of the event types (the server's own words when a type is new to
 * this build), a URL shortened for a list, the disabled reason, a delivery's state and an attempt's
 * result — and copying a secret.
 */
import type { Webhook, WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus } from '@/api/types'
import { i18n } from '@/i18n'

/** The statuses the delivery log can be filtered by (the server's `status=`). */
export const DELIVERY_STATUSES: WebhookDeliveryStatus[] = ['pending', 'sending', 'delivered', 'failed']

/** A delivery as shown: a pending one that failed before is `retrying`. */
export type DeliveryState = 'pending' | 'retrying' | 'sending' | 'delivered' | 'failed'

export function deliveryState(d: Pick<WebhookDelivery, 'status' | 'attempts'>): DeliveryState {
  return d.status === 'pending' && d.attempts > 0 ? 'retrying' : d.status
}

export const DELIVERY_TAG: Record<DeliveryState, 'primary' | 'warning' | 'success' | 'danger' | 'default'> = {
  pending: 'default',
  retrying: 'warning',
  sending: 'primary',
  delivered: 'success',
  failed: 'danger',
}

/** `customer.created` → the i18n key `customer_created` (dots would be read as a path). */
const eventKey = (type: string) => type.replace(/\./g, '_')

/** `新建客户` for `customer.created`; the type itself when this build does not know it. */
export function eventTypeName(type: string): string {
  const { t, te } = i18n.global
  const key = `webhooks.events.${eventKey(type)}`
  return te(key) ? t(key) : type
}

/** What the event reports, in the UI language, else the server's description. */
export function eventTypeDescription(type: string, serverText?: string | null): string {
  const { t, te } = i18n.global
  const key = `webhooks.eventDescriptions.${eventKey(type)}`
  return te(key) ? t(key) : (serverText ?? '')
}

/**
 * A URL short enough for one line of a list: no `https://` (plain http keeps its scheme, as a
 * warning), the middle of a long path elided. The full URL stays in the element's title.
 */
export function shortUrl(url: string, max = 42): string {
  let text = url
  try {
    const u = new URL(url)
    const path = `${u.pathname === '/' ? '' : u.pathname}${u.search}`
    text = `${u.protocol === 'https:' ? '' : `${u.protocol}//`}${u.host}${path}`
  } catch {
    // shown as it is
  }
  if (text.length <= max) return text
  const head = Math.ceil((max - 1) * 0.6)
  const tail = max - 1 - head
  return `${text.slice(0, head)}…${text.slice(text.length - tail)}`
}

export type WebhookState = 'enabled' | 'disabled'

export const webhookState = (w: Pick<Webhook, 'enabled'>): WebhookState => (w.enabled ? 'enabled' : 'disabled')

/** Why it was disabled: the dispatcher's reason in the UI language (else as the server wrote it). */
export function disabledReasonText(reason: string | null | undefined): string {
  const { t } = i18n.global
  if (!reason) return t('webhooks.disabledByHand')
  const m = /^(\d+) deliveries in a row failed$/.exec(reason)
  return m ? t('webhooks.disabledForFailures', { n: Number(m[1]) }) : reason
}

/** `HTTP 500 · 12 ms`, or the network error when no answer came. */
export function attemptResult(a: Pick<WebhookAttempt, 'status' | 'error' | 'latency_ms'>): string {
  const { t } = i18n.global
  const what = a.status !== null ? `HTTP ${a.status}` : t('webhooks.noResponse')
  return `${what} · ${t('webhooks.latency', { ms: a.latency_ms })}`
}

export const attemptOk = (a: Pick<WebhookAttempt, 'status' | 'error'>): boolean =>
  !a.error && a.status !== null && a.status >= 200 && a.status < 300

/**
 * Copy with the Clipboard API, else (plain http on a LAN, no permission) by selecting `box`'s text
 * and `execCommand('copy')`; on failure the text stays selected for copying by hand.
 */
export async function copyText(text: string, box: HTMLElement | null): Promise<boolean> {
  try {
    if (!navigator.clipboard?.writeText) throw new Error('no clipboard API')
    await navigator.clipboard.writeText(text)
    return true
  } catch {
    // fall back below
  }
  const selection = window.getSelection()
  if (!box || !selection) return false
  const range = document.createRange()
  range.selectNodeContents(box)
  selection.removeAllRanges()
  selection.addRange(range)
  try {
    return document.execCommand('copy')
  } catch {
    return false
  }
}
