import { currentLocale } from '@/i18n'

function toDate(value: string | null | undefined): Date | null {
  if (!value) return null
  const d = new Date(value)
  return Number.isNaN(d.getTime()) ? null : d
}

export function formatDate(value: string | null | undefined): string {
  const d = toDate(value)
  if (!d) return ''
  // plain dates (YYYY-MM-DD) are shown as they are, with no time zone shift
  if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value)) return value
  return new Intl.DateTimeFormat(currentLocale(), { year: 'numeric', month: '2-digit', day: '2-digit' }).format(d)
}

export function formatDateTime(value: string | null | undefined): string {
  const d = toDate(value)
  if (!d) return ''
  return new Intl.DateTimeFormat(currentLocale(), {
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
  }).format(d)
}

/** "3 days ago" / "3 天前". */
export function formatRelative(value: string | null | undefined, now: Date = new Date()): string {
  const d = toDate(value)
  if (!d) return ''
  const seconds = Math.round((d.getTime() - now.getTime()) / 1000)
  const abs = Math.abs(seconds)
  const rtf = new Intl.RelativeTimeFormat(currentLocale(), { numeric: 'auto' })
  if (abs < 60) return rtf.format(seconds, 'second')
  if (abs < 3600) return rtf.format(Math.round(seconds / 60), 'minute')
  if (abs < 86400) return rtf.format(Math.round(seconds / 3600), 'hour')
  if (abs < 86400 * 30) return rtf.format(Math.round(seconds / 86400), 'day')
  return formatDate(value)
}

export function formatKm(km: number | null | undefined): string {
  if (km === null || km === undefined) return ''
  return km < 10 ? km.toFixed(1) : Math.round(km).toString()
}

/** `2024-05-01` from a Date, in local time (for date pickers). */
export function isoDate(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`
}

export function levelTagType(level: string | null | undefined): 'danger' | 'warning' | 'primary' | 'default' {
  if (level === 'A') return 'danger'
  if (level === 'B') return 'warning'
  if (level === 'C') return 'primary'
  return 'default'
}

/** `14:30` in local time. */
export function formatTime(value: string | null | undefined): string {
  const d = toDate(value)
  if (!d) return ''
  return new Intl.DateTimeFormat(currentLocale(), { hour: '2-digit', minute: '2-digit', hour12: false }).format(d)
}

/** `5月3日 周五` / `Fri, May 3`: a day heading. */
export function formatDay(value: string | Date | null | undefined): string {
  const d = value instanceof Date ? value : toDate(value)
  if (!d) return ''
  return new Intl.DateTimeFormat(currentLocale(), { month: 'short', day: 'numeric', weekday: 'short' }).format(d)
}

/** An ISO 8601 date-time with the local UTC offset (`2024-05-01T14:30:00+08:00`), for the API. */
export function toOffsetIso(d: Date): string {
  const pad = (n: number) => String(Math.floor(Math.abs(n))).padStart(2, '0')
  const offset = -d.getTimezoneOffset()
  const sign = offset >= 0 ? '+' : '-'
  return (
    `${isoDate(d)}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}` +
    `${sign}${pad(offset / 60)}:${pad(offset % 60)}`
  )
}

/** Midnight today, local time. */
export function startOfToday(now: Date = new Date()): Date {
  return new Date(now.getFullYear(), now.getMonth(), now.getDate())
}

/** Whole local days from today to `value` (negative = in the past). */
export function daysFromToday(value: string | null | undefined, now: Date = new Date()): number | null {
  const d = toDate(value)
  if (!d) return null
  const day = new Date(d.getFullYear(), d.getMonth(), d.getDate())
  return Math.round((day.getTime() - startOfToday(now).getTime()) / 86_400_000)
}

/** A money decimal string ("1234.50") shown with grouping and two decimals ("1,234.50"). */
export function formatMoney(value: string | number | null | undefined): string {
  if (value === null || value === undefined || value === '') return '—'
  const n = typeof value === 'number' ? value : Number(value)
  if (Number.isNaN(n)) return String(value)
  return new Intl.NumberFormat(currentLocale(), { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(n)
}

/** 0.4567 → "45.7%"; null → "—". */
export function formatPercent(ratio: number | null | undefined): string {
  if (ratio === null || ratio === undefined) return '—'
  return new Intl.NumberFormat(currentLocale(), { style: 'percent', maximumFractionDigits: 1 }).format(ratio)
}
