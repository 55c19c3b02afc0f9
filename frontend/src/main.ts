import { createApp } from 'vue'
import App from './App.vue'
import { i18n } from './i18n'
import { router } from './router'
import { installVant } from './plugins/vant'
import { setSessionEndedHandler } from './api/client'
import { markNotificationRead } from './api/endpoints'
import { isLoggedIn } from './api/tokens'
import { me } from './stores/session'
import { resetMeta } from './stores/meta'
import { refreshUnread } from './stores/notifications'
import { appLink } from './utils/activities'
import { registerServiceWorker } from './utils/push'
import { clearApiCaches } from './offline/cache'
import { startOutbox } from './offline/outbox'
import './styles.css'

setSessionEndedHandler(() => {
  me.value = null
  // whoever signs in next must not be shown this user's cached reads (their queued writes stay theirs)
  void clearApiCaches()
  resetMeta()
  const current = router.currentRoute.value
  if (current.name !== 'login') {
    void router.replace({ name: 'login', query: { redirect: current.fullPath } })
  }
})

const app = createApp(App)
installVant(app)
app.use(i18n)
app.use(router)
app.mount('#app')

// writes queued offline (SPEC K3): shown and sent now, and whenever the network comes back
startOutbox()

// Web Push (SPEC K3): the service worker shows pushes; a tapped one is routed here in place
if ('serviceWorker' in navigator) {
  void registerServiceWorker()
  navigator.serviceWorker.addEventListener('message', (event: MessageEvent) => {
    const msg = event.data as { type?: string; link?: string; notification_id?: unknown } | null
    if (msg?.type !== 'kehu:navigate') return
    if (typeof msg.notification_id === 'number' && isLoggedIn.value) {
      markNotificationRead(msg.notification_id)
        .then(refreshUnread)
        .catch(() => undefined)
    }
    const link = appLink(msg.link)
    if (link) void router.push(link)
  })
}
