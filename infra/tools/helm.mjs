// helm, to lint and render infra/helm/teal in test/deploy-files.test.ts.
import { goInstall } from './_go.mjs';

export const name = 'helm';
export const version = 'v3.22.0';

export function ensure() {
  return goInstall({ name, pkg: 'helm.sh/helm/v3/cmd/helm', version });
}
