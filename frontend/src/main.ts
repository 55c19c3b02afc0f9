import { createApp } from 'vue'
import App from './App.vue'
import { i18n } from './i18n'
import { router } from './router'
import { installVant } from './plugins/vant'
import { setSessionEndedHandler } from './api/client'
import { me } from './stores/session'
import { resetMeta } from './stores/meta'
import './styles.css'

setSessionEndedHandler(() => {
  me.value = null
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
