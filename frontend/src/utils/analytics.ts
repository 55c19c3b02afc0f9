/** What the analytics screens share: windows, money in cents, segment colours, customer links. */
import { onMounted, ref, shallowRef, type Ref, type ShallowRef } from 'vue'
import { analyticsDimensions } from '@/api/endpoints'
import type { AnalyticsDimension } from '@/api/types'
import { ApiError } from '@/api/errors'
import { currentLocale, i18n } from '@/i18n'
import { errorMessage, showError } from '@/utils/feedback'
import { formatMoney, isoDate } from '@/utils/format'
import { valueText } from '@/utils/labels'

export type WindowPreset = 'last30' | 'last90' | 'last365' | 'thisYear' | 'custom'

/** The dates of a preset window, ending today (local time). */
export function presetRange(preset: Exclude<WindowPreset, 'custom'>, now = new Date()): [string, string] {
  const y = now.getFullYear()
  const m = now.getMonth()
  const d = now.getDate()
  if (preset === 'thisYear') return [isoDate(new Date(y, 0, 1)), isoDate(now)]
  const days = preset === 'last30' ? 30 : preset === 'last90' ? 90 : 365
  return [isoDate(new Date(y, m, d - days + 1)), isoDate(now)]
}

/** Integer cents as "¥1,234.50". */
export function yuan(cents: number | null | undefined): string {
  if (cents === null || cents === undefined) return '—'
  return '¥' + formatMoney(cents / 100)
}

/** Integer cents shortened for charts and narrow cells: "¥1.2万" / "¥12.3k". */
export function yuanShort(cents: number | null | undefined): string {
  if (cents === null || cents === undefined) return '—'
  const n = cents / 100
  const abs = Math.abs(n)
  if (currentLocale() === 'en') {
    if (abs >= 1e6) return `¥${(n / 1e6).toFixed(1)}M`
    if (abs >= 1e3) return `¥${(n / 1e3).toFixed(1)}k`
    return `¥${Math.round(n)}`
  }
  if (abs >= 1e8) return `¥${(n / 1e8).toFixed(1)}亿`
  if (abs >= 1e4) return `¥${(n / 1e4).toFixed(1)}万`
  return `¥${Math.round(n)}`
}

/** A p-value for people: "<0.001" or three decimals. */
export function formatP(p: number | null | undefined): string {
  if (p === null || p === undefined) return '—'
  return p < 0.001 ? '<0.001' : p.toFixed(3)
}

export function formatRatio(x: number | null | undefined, digits = 2): string {
  if (x === null || x === undefined) return '—'
  return `×${x.toFixed(digits)}`
}

/**
 * A dimension as the pickers list it: tag groups and custom fields say so, since their names can
 * repeat a field's (the demo has both the age band and a tag group 年龄段).
 */
export function dimensionLabel(d: { label: string; kind?: string }): string {
  if (d.kind === 'tag_group' || d.kind === 'custom') {
    return `${d.label}（${i18n.global.t(`analytics.dimensionKind.${d.kind}`)}）`
  }
  return d.label
}

/** A bucket of a dimension as people read it: field enums translated (gender, kind, level …), null as "not set". */
export function bucketText(dimension: string, value: string | null | undefined): string {
  if (value === null || value === undefined) return i18n.global.t('analytics.noValue')
  return valueText(dimension, value)
}

/** The RFM segments, best first, each with its colour. */
export const RFM_SEGMENTS = [
  'champions',
  'loyal',
  'potential_loyalists',
  'new',
  'promising',
  'need_attention',
  'about_to_sleep',
  'at_risk',
  'cant_lose',
  'hibernating',
  'lost',
] as const
export type RfmSegmentName = (typeof RFM_SEGMENTS)[number]

export const RFM_COLORS: Record<RfmSegmentName, string> = {
  champions: '#1a9850',
  loyal: '#66bd63',
  potential_loyalists: '#a6d96a',
  new: '#4fb3d9',
  promising: '#8fd0e8',
  need_attention: '#fee08b',
  about_to_sleep: '#fdc76a',
  at_risk: '#f46d43',
  cant_lose: '#d73027',
  hibernating: '#b8b8c8',
  lost: '#8a8a9a',
}

/** Text colour readable on a segment's background. */
export function onColor(segment: RfmSegmentName): string {
  return ['champions', 'cant_lose', 'lost', 'at_risk'].includes(segment) ? '#fff' : '#323233'
}

export const QUADRANT_COLORS = {
  star: '#1a9850',
  volume: '#1989fa',
  niche: '#ff976a',
  tail: '#b8b8c8',
} as const
export type Quadrant = keyof typeof QUADRANT_COLORS

/** An analytics answer as `useAnalytics` keeps it. */
export interface Analysis<T> {
  data: ShallowRef<T | null>
  loading: Ref<boolean>
  error: Ref<string>
  load: () => Promise<void>
}

/**
 * One analytics answer: `load()` fetches it again (a newer call wins over a slower older one),
 * `error` is what to show instead (an endpoint the server does not offer yet reads as unavailable).
 */
export function useAnalytics<T>(fetcher: () => Promise<T>): Analysis<T> {
  const data = shallowRef<T | null>(null)
  const loading = ref(false)
  const error = ref('')
  let generation = 0
  async function load(): Promise<void> {
    const mine = ++generation
    loading.value = true
    error.value = ''
    try {
      const answer = await fetcher()
      if (mine === generation) data.value = answer
    } catch (err) {
      if (mine !== generation) return
      error.value =
        err instanceof ApiError && err.status === 404 && !data.value
          ? i18n.global.t('analytics.unavailable')
          : errorMessage(err)
    } finally {
      if (mine === generation) loading.value = false
    }
  }
  return { data, loading, error, load }
}

/**
 * A list under an analytics answer that grows a page at a time: the answer's load sets `items` to
 * the first page, `loadMore()` appends the page `fetchPage(offset)` returns for the items so far
 * (`more` while it comes; a failure is toasted and the list stays).
 */
export function usePagedList<T>(fetchPage: (offset: number) => Promise<T[]>) {
  const items = shallowRef<T[]>([])
  const more = ref(false)
  async function loadMore(): Promise<void> {
    if (more.value) return
    more.value = true
    try {
      const page = await fetchPage(items.value.length)
      items.value = [...items.value, ...page]
    } catch (err) {
      showError(err)
    } finally {
      more.value = false
    }
  }
  return { items, more, loadMore }
}

/** The dimensions a picker offers, fetched when the screen mounts (empty until then, or if that fails). */
export function useDimensions(): Ref<AnalyticsDimension[]> {
  const dimensions = ref<AnalyticsDimension[]>([])
  onMounted(async () => {
    try {
      dimensions.value = await analyticsDimensions()
    } catch {
      // the pickers keep their defaults
    }
  })
  return dimensions
}
