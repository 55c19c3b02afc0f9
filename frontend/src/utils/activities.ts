/** Words for follow-ups, visits and notifications that several screens share. */
import { i18n } from '@/i18n'
import type { FollowUpType, Visit } from '@/api/types'

export const FOLLOW_UP_TYPES: FollowUpType[] = ['call', 'visit', 'message', 'email', 'meeting', 'other', 'return_visit']

export const FOLLOW_UP_ICONS: Record<string, string> = {
  call: 'phone-o',
  visit: 'location-o',
  message: 'chat-o',
  email: 'envelop-o',
  meeting: 'friends-o',
  other: 'notes-o',
  return_visit: 'service-o',
}

/** The reminder choices of a visit plan (minutes before the start). */
export const REMINDER_CHOICES = [0, 15, 30, 60, 1440] as const
export const DEFAULT_REMINDERS = [30]

/** `320 米` / `1.2 公里`. */
export function distanceText(meters: number): string {
  const { t } = i18n.global
  if (meters < 1000) return t('distance.m', { n: Math.round(meters) })
  const km = meters / 1000
  return t('distance.km', { n: km < 10 ? km.toFixed(1) : Math.round(km) })
}

/** `开始时` / `提前 30 分钟` / `提前 1 小时` / `提前 1 天`. */
export function reminderOffsetText(minutes: number): string {
  const { t } = i18n.global
  if (minutes === 0) return t('visit.atStart')
  if (minutes % 1440 === 0) return t('visit.beforeDays', { n: minutes / 1440 })
  if (minutes % 60 === 0) return t('visit.beforeHours', { n: minutes / 60 })
  return t('visit.beforeMinutes', { n: minutes })
}

export function visitStatusTagType(status: Visit['status']): 'primary' | 'success' | 'default' {
  if (status === 'planned') return 'primary'
  if (status === 'completed') return 'success'
  return 'default'
}

/** Every kind the server sends, each of which can be kept off the phone (app/schemas/notification.py). */
export const NOTIFICATION_KINDS = [
  'visit_reminder',
  'missed_reminder',
  'follow_up_due',
  'customer_changed',
  'birthday',
  'anniversary',
  'digest',
  'stale_opportunity',
  'payment_overdue',
  'contract_expiring',
  'reclaim_warning',
  'customers_reclaimed',
  'customers_assigned',
  'customers_transferred',
  'customers_transferred_away',
  'customer_shared',
  'customers_merged',
  'customer_frozen',
  'customer_abandoned',
] as const

export const NOTIFICATION_ICONS: Record<string, string> = {
  visit_reminder: 'clock-o',
  missed_reminder: 'warning-o',
  follow_up_due: 'todo-list-o',
  customer_changed: 'friends-o',
  birthday: 'gift-o',
  anniversary: 'medal-o',
  digest: 'newspaper-o',
  stale_opportunity: 'underway-o',
  payment_overdue: 'balance-o',
  contract_expiring: 'notes-o',
  reclaim_warning: 'warning-o',
  customers_reclaimed: 'revoke',
  customers_assigned: 'manager-o',
  customers_transferred: 'exchange',
  customers_transferred_away: 'exchange',
  customer_shared: 'share-o',
  customers_merged: 'cluster-o',
  customer_frozen: 'pause-circle-o',
  customer_abandoned: 'delete-o',
}

/** A notification's deep link, if it is a path inside this app (never another origin). */
export function appLink(link: string | null | undefined): string | null {
  return typeof link === 'string' && link.startsWith('/') && !link.startsWith('//') ? link : null
}
