import { createRouter, createWebHistory, type RouteLocationRaw } from 'vue-router'
import { isLoggedIn } from '@/api/tokens'
import { loadMe, me } from '@/stores/session'

declare module 'vue-router' {
  interface RouteMeta {
    /** Reachable without a session. */
    public?: boolean
    /** Shows the bottom tab bar. */
    tabbar?: boolean
    /** The tab bar item shown as active, when it is not the route's own path (the pool is under customers). */
    tab?: string
  }
}

export const router = createRouter({
  history: createWebHistory('/'),
  routes: [
    { path: '/', name: 'today', component: () => import('@/views/TodayView.vue'), meta: { tabbar: true } },
    { path: '/login', name: 'login', component: () => import('@/views/LoginView.vue'), meta: { public: true } },
    {
      path: '/customers',
      name: 'customers',
      component: () => import('@/views/CustomerListView.vue'),
      meta: { tabbar: true },
    },
    {
      path: '/pools',
      name: 'pools',
      component: () => import('@/views/PoolView.vue'),
      meta: { tabbar: true, tab: '/customers' },
    },
    {
      path: '/pools/:id(\\d+)/stats',
      name: 'pool-stats',
      component: () => import('@/views/PoolStatsView.vue'),
      props: (route) => ({ id: Number(route.params.id) }),
    },
    { path: '/recycle-bin', name: 'recycle-bin', component: () => import('@/views/RecycleBinView.vue') },
    { path: '/customers/new', name: 'customer-new', component: () => import('@/views/CustomerFormView.vue') },
    {
      path: '/customers/:id(\\d+)',
      name: 'customer',
      component: () => import('@/views/CustomerDetailView.vue'),
      props: (route) => ({ id: Number(route.params.id) }),
    },
    {
      path: '/customers/:id(\\d+)/edit',
      name: 'customer-edit',
      component: () => import('@/views/CustomerFormView.vue'),
      props: (route) => ({ id: Number(route.params.id) }),
    },
    {
      path: '/customers/:id(\\d+)/follow-ups/new',
      name: 'follow-up-new',
      component: () => import('@/views/FollowUpFormView.vue'),
      props: (route) => ({ id: Number(route.params.id) }),
    },
    {
      path: '/customers/:id(\\d+)/visits/new',
      name: 'visit-new',
      component: () => import('@/views/VisitPlanView.vue'),
      props: (route) => ({ id: Number(route.params.id) }),
    },
    {
      path: '/customers/:id(\\d+)/opportunities/new',
      name: 'opportunity-new',
      component: () => import('@/views/OpportunityFormView.vue'),
      props: (route) => ({ id: Number(route.params.id) }),
    },
    { path: '/opportunities', name: 'opportunities', component: () => import('@/views/OpportunityListView.vue') },
    {
      path: '/opportunities/:id(\\d+)',
      name: 'opportunity',
      component: () => import('@/views/OpportunityDetailView.vue'),
      props: (route) => ({ id: Number(route.params.id) }),
    },
    { path: '/contracts', name: 'contracts', component: () => import('@/views/ContractListView.vue') },
    {
      path: '/contracts/:id(\\d+)',
      name: 'contract',
      component: () => import('@/views/ContractDetailView.vue'),
      props: (route) => ({ id: Number(route.params.id) }),
    },
    { path: '/funnel', name: 'funnel', component: () => import('@/views/FunnelView.vue') },
    { path: '/dashboard', name: 'dashboard', component: () => import('@/views/DashboardView.vue') },
    { path: '/analytics', name: 'analytics', component: () => import('@/views/analytics/AnalyticsHubView.vue') },
    {
      path: '/analytics/persona',
      name: 'analytics-persona',
      component: () => import('@/views/analytics/PersonaView.vue'),
    },
    {
      path: '/analytics/segments',
      name: 'analytics-segments',
      component: () => import('@/views/analytics/SegmentsView.vue'),
    },
    { path: '/analytics/rfm', name: 'analytics-rfm', component: () => import('@/views/analytics/RfmView.vue') },
    {
      path: '/analytics/pyramid',
      name: 'analytics-pyramid',
      component: () => import('@/views/analytics/PyramidView.vue'),
    },
    {
      path: '/analytics/value-matrix',
      name: 'analytics-value-matrix',
      component: () => import('@/views/analytics/ValueMatrixView.vue'),
    },
    {
      path: '/analytics/retention',
      name: 'analytics-retention',
      component: () => import('@/views/analytics/RetentionView.vue'),
    },
    {
      path: '/analytics/basket',
      name: 'analytics-basket',
      component: () => import('@/views/analytics/BasketView.vue'),
    },
    {
      path: '/analytics/lead-scores',
      name: 'analytics-lead-scores',
      component: () => import('@/views/analytics/LeadScoresView.vue'),
    },
    {
      path: '/analytics/products',
      name: 'analytics-products',
      component: () => import('@/views/analytics/ProductsView.vue'),
    },
    { path: '/tag-rules', name: 'tag-rules', component: () => import('@/views/TagRuleListView.vue') },
    { path: '/tag-rules/new', name: 'tag-rule-new', component: () => import('@/views/TagRuleFormView.vue') },
    {
      path: '/tag-rules/:id(\\d+)',
      name: 'tag-rule',
      component: () => import('@/views/TagRuleFormView.vue'),
      props: (route) => ({ id: Number(route.params.id) }),
    },
    // not `/api-keys`: the server keeps every path that begins with `api` from the SPA fallback
    { path: '/integrations/api-keys', name: 'api-keys', component: () => import('@/views/ApiKeyListView.vue') },
    { path: '/integrations/api-keys/new', name: 'api-key-new', component: () => import('@/views/ApiKeyFormView.vue') },
    { path: '/integrations/webhooks', name: 'webhooks', component: () => import('@/views/WebhookListView.vue') },
    { path: '/integrations/webhooks/new', name: 'webhook-new', component: () => import('@/views/WebhookFormView.vue') },
    {
      path: '/integrations/webhooks/:id(\\d+)',
      name: 'webhook',
      component: () => import('@/views/WebhookDetailView.vue'),
      props: (route) => ({ id: Number(route.params.id) }),
    },
    {
      path: '/integrations/webhooks/:id(\\d+)/edit',
      name: 'webhook-edit',
      component: () => import('@/views/WebhookFormView.vue'),
      props: (route) => ({ id: Number(route.params.id) }),
    },
    { path: '/imports', name: 'imports', component: () => import('@/views/ImportListView.vue') },
    { path: '/imports/new', name: 'import-new', component: () => import('@/views/ImportWizardView.vue') },
    {
      path: '/imports/:id(\\d+)',
      name: 'import',
      component: () => import('@/views/ImportDetailView.vue'),
      props: (route) => ({ id: Number(route.params.id) }),
    },
    { path: '/orders', name: 'orders', component: () => import('@/views/OrderListView.vue') },
    { path: '/visits', name: 'visits', component: () => import('@/views/VisitListView.vue') },
    {
      path: '/visits/:id(\\d+)',
      name: 'visit',
      component: () => import('@/views/VisitDetailView.vue'),
      props: (route) => ({ id: Number(route.params.id) }),
    },
    {
      path: '/notifications',
      name: 'notifications',
      component: () => import('@/views/NotificationsView.vue'),
      meta: { tabbar: true },
    },
    { path: '/me', name: 'me', component: () => import('@/views/MeView.vue'), meta: { tabbar: true } },
    {
      path: '/me/notifications',
      name: 'notification-settings',
      component: () => import('@/views/NotificationSettingsView.vue'),
    },
    { path: '/:pathMatch(.*)*', redirect: '/' },
  ],
})

router.beforeEach(async (to): Promise<RouteLocationRaw | true> => {
  if (!to.meta.public && !isLoggedIn.value) {
    return { name: 'login', query: to.fullPath !== '/' ? { redirect: to.fullPath } : {} }
  }
  if (to.name === 'login' && isLoggedIn.value) return { name: 'today' }
  if (isLoggedIn.value && !me.value) {
    // the profile (permissions) once per page load; a failure is handled by the screens
    await loadMe().catch(() => undefined)
    if (!isLoggedIn.value && !to.meta.public) return { name: 'login', query: { redirect: to.fullPath } }
  }
  return true
})

/** Where to go after logging in: a same-app path only (no open redirect). */
export function redirectTarget(raw: unknown): string {
  return typeof raw === 'string' && raw.startsWith('/') && !raw.startsWith('//') ? raw : '/'
}
