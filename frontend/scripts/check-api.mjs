#!/usr/bin/env node
// Regenerates the API types from the backend's OpenAPI document into a temp dir and fails if they
// differ from the committed src/api/schema.d.ts (run `npm run gen:api` to update them).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const frontend = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const repo = resolve(frontend, '..')
const python = process.env.KEHU_PYTHON ?? join(repo, '.venv', 'bin', 'python')
const committedPath = join(frontend, 'src', 'api', 'schema.d.ts')
const tmp = mkdtempSync(join(tmpdir(), 'kehu-api-'))

try {
  const spec = execFileSync(python, ['-m', 'app.cli', 'openapi'], { cwd: frontend, maxBuffer: 64 * 1024 * 1024 })
  const specPath = join(tmp, 'openapi.json')
  const outPath = join(tmp, 'schema.d.ts')
  writeFileSync(specPath, spec)
  execFileSync(join(frontend, 'node_modules', '.bin', 'openapi-typescript'), [specPath, '--default-non-nullable', 'false', '-o', outPath], {
    cwd: frontend,
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const fresh = readFileSync(outPath, 'utf8')
  const committed = readFileSync(committedPath, 'utf8')
  if (fresh !== committed) {
    const a = committed.split('\n')
    const b = fresh.split('\n')
    let line = 0
    while (line < Math.min(a.length, b.length) && a[line] === b[line]) line++
    console.error(`src/api/schema.d.ts is out of date with the backend's OpenAPI document (first difference at line ${line + 1}).`)
    console.error(`  committed: ${a[line] ?? '<end of file>'}`)
    console.error(`  generated: ${b[line] ?? '<end of file>'}`)
    console.error('Run `npm run gen:api` in frontend/ and commit the result.')
    process.exit(1)
  }
  console.log('src/api/schema.d.ts matches the OpenAPI document.')
} finally {
  rmSync(tmp, { recursive: true, force: true })
}
