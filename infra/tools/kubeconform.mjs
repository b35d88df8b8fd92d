// kubeconform, to validate the chart's rendered manifests against Kubernetes' JSON schemas.
// kubeconform fetches schemas from the web by default; here they come from the PyPI package
// kubernetes-validate, which ships them for every Kubernetes minor. Its schemas carry an
// https://kubernetes.io/... $id and refer to "/api/_definitions.json" (resolved by its own
// loader); the copy made here drops the $id and refers to the file beside them, which
// kubeconform reads from disk.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { cacheRoot, goInstall } from './_go.mjs';

const run = promisify(execFile);

export const name = 'kubeconform';
export const version = 'v0.8.0';
const SCHEMAS_PACKAGE = 'kubernetes-validate==1.37.0';
// Bump when the layout below changes, so a cached copy of the old layout is not taken.
const LAYOUT = 2;
/** The Kubernetes version the chart is validated against (kubeconform -kubernetes-version). */
export const kubernetesVersion = '1.34.0';

const schemaRoot = path.join(
  cacheRoot,
  'kubernetes-json-schema',
  `${SCHEMAS_PACKAGE.split('==')[1]}-${LAYOUT}`,
);

/** kubeconform's -schema-location for the schemas ensureSchemas() laid out. */
export const schemaLocation = `${schemaRoot}/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json`;

export async function ensure() {
  const [exe] = await Promise.all([
    goInstall({ name, pkg: 'github.com/yannh/kubeconform/cmd/kubeconform', version }),
    ensureSchemas(),
  ]);
  return exe;
}

/** Strict and non-strict schemas of `kubernetesVersion`, as kubeconform's "standalone" layout names them. */
export async function ensureSchemas() {
  const ready = path.join(schemaRoot, '.ready');
  if (fs.existsSync(ready)) return schemaRoot;
  fs.mkdirSync(cacheRoot, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(cacheRoot, '.kubernetes-json-schema-'));
  try {
    await run('python3', ['-m', 'pip', 'download', '--quiet', '--no-deps', '--dest', tmp, SCHEMAS_PACKAGE], {
      timeout: 10 * 60 * 1000,
    });
    const wheel = fs.readdirSync(tmp).find((f) => f.endsWith('.whl'));
    if (!wheel) throw new Error(`pip download ${SCHEMAS_PACKAGE} left no wheel in ${tmp}`);
    const v = `v${kubernetesVersion}`;
    // A wheel is a zip; Python reads it without an unzip binary.
    const script = `
import json, os, sys, zipfile
wheel, out, v = sys.argv[1:4]
z = zipfile.ZipFile(wheel)
for flavour, dest in (("-local", "-standalone"), ("-local-strict", "-standalone-strict")):
    prefix = "kubernetes_validate/kubernetes-json-schema/" + v + flavour + "/"
    target = os.path.join(out, v + dest)
    os.makedirs(target, exist_ok=True)
    n = 0
    for name in z.namelist():
        if name.startswith(prefix) and name.endswith(".json"):
            schema = json.loads(z.read(name))
            # Without its https://kubernetes.io/... $id, a schema's base is its own file.
            schema.pop("$id", None)
            text = json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#')
            with open(os.path.join(target, name[len(prefix):]), "w") as f:
                f.write(text)
            n += 1
    if n == 0:
        sys.exit("no schemas for " + v + flavour + " in " + wheel)
`;
    const staged = path.join(tmp, 'out');
    await run('python3', ['-c', script, path.join(tmp, wheel), staged, v]);
    fs.mkdirSync(path.dirname(schemaRoot), { recursive: true });
    fs.rmSync(schemaRoot, { recursive: true, force: true });
    fs.renameSync(staged, schemaRoot);
    fs.writeFileSync(ready, `${SCHEMAS_PACKAGE} ${v}\n`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return schemaRoot;
}
