// promtool (Prometheus' rule checker and rule unit-test runner) for test/deploy-files.test.ts.
import { goInstall } from './_go.mjs';

export const name = 'promtool';
export const version = 'v0.316.0';

export function ensure() {
  // remove_all_sd: without the service-discovery plugins (AWS, Azure, GCE, Kubernetes, ...),
  // which rule checks and rule tests do not use and which are most of the build.
  return goInstall({
    name,
    pkg: 'github.com/prometheus/prometheus/cmd/promtool',
    version,
    tags: ['remove_all_sd'],
  });
}
