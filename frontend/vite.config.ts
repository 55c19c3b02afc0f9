import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import { fileURLToPath, URL } from 'node:url'
import { defineConfig, type Plugin } from 'vite'
import vue from '@vitejs/plugin-vue'

/** Every file under `dir`, as paths relative to it with forward slashes. */
function filesUnder(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const full = join(dir, name)
    if (statSync(full).isDirectory()) out.push(...filesUnder(full).map((f) => `${name}/${f}`))
    else out.push(name)
  }
  return out
}

/**
 * The offline app shell (SPEC K3): once the bundle is written, list the built files into
 * `dist/sw.js` (its `PRECACHE_URLS`) with a build id made from their contents. Every build that
 * changes a file changes the service worker's bytes, so browsers install the new one and drop the
 * old shell cache. No dependency: the worker is small and hand-written (public/sw.js).
 */
function kehuServiceWorker(): Plugin {
  let outDir = 'dist'
  return {
    name: 'kehu-service-worker',
    apply: 'build',
    configResolved(config) {
      outDir = config.build.outDir.startsWith('/') ? config.build.outDir : join(config.root, config.build.outDir)
    },
    closeBundle() {
      const swPath = join(outDir, 'sw.js')
      const files = filesUnder(outDir)
        .map((f) => f.split(sep).join('/'))
        .filter((f) => f !== 'sw.js' && !f.endsWith('.map') && !f.startsWith('.'))
        .sort()
      const hash = createHash('sha256')
      for (const f of files) hash.update(f).update(readFileSync(join(outDir, f)))
      const urls = files.map((f) => `/${f}`)
      const sw = readFileSync(swPath, 'utf8')
        .replace('__KEHU_BUILD_ID__', hash.digest('hex').slice(0, 16))
        .replace('const PRECACHE_URLS = [] /* __KEHU_PRECACHE__ */', `const PRECACHE_URLS = ${JSON.stringify(urls)}`)
      if (!sw.includes('const PRECACHE_URLS = ["')) this.error('public/sw.js lost its __KEHU_PRECACHE__ marker')
      writeFileSync(swPath, sw)
      this.info?.(`sw.js precaches ${urls.length} files (${relative(process.cwd(), swPath)})`)
    },
  }
}

export default defineConfig({
  base: '/',
  plugins: [vue(), kehuServiceWorker()],
  define: {
    // vue-i18n esm-bundler feature flags (composition API only, no devtools in production)
    __VUE_I18N_FULL_INSTALL__: true,
    __VUE_I18N_LEGACY_API__: false,
    __INTLIFY_PROD_DEVTOOLS__: false,
  },
  resolve: {
    alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) },
  },
  server: {
    host: '127.0.0.1',
    port: 5173,
    proxy: {
      '/api': { target: 'http://127.0.0.1:8000', changeOrigin: true },
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1200,
  },
})
