// Finding, and on Debian/Ubuntu as root installing, what the environment runs on:
// PostgreSQL's server binaries, Java 11+ and Maven (for the Kafka broker's jars).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fail, IS_ROOT, log, runOk, secs, which } from './common.mjs';

/** The directory holding initdb and pg_ctl, newest major version first. */
export function pgBinDir() {
  const candidates = [];
  const fromConfig = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  if (fromConfig.status === 0) candidates.push(fromConfig.stdout.trim());
  try {
    const versions = fs
      .readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  } catch {}
  // pg_config from libpq-dev may point at /usr/bin, which has no initdb.
  return candidates.find(
    (dir) => fs.existsSync(path.join(dir, 'initdb')) && fs.existsSync(path.join(dir, 'pg_ctl')),
  );
}

function javaMajor() {
  const res = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (res.status !== 0) return undefined;
  const m = /version "(\d+)(?:\.(\d+))?/.exec(res.stderr + res.stdout);
  if (!m) return undefined;
  // Java 8 and older print "1.8.0_..."
  return m[1] === '1' ? Number(m[2]) : Number(m[1]);
}

function missingPrerequisites() {
  const missing = [];
  if (!pgBinDir()) missing.push({ what: 'PostgreSQL server binaries (initdb, pg_ctl)', apt: 'postgresql' });
  const java = javaMajor();
  if (java === undefined || java < 11) missing.push({ what: 'Java 17 (java)', apt: 'default-jdk-headless' });
  if (!which('mvn')) missing.push({ what: 'Maven (mvn)', apt: 'maven' });
  if (IS_ROOT && !which('runuser')) missing.push({ what: 'runuser', apt: 'util-linux' });
  return missing;
}

export async function ensurePrerequisites() {
  const missing = missingPrerequisites();
  if (missing.length === 0) return;
  const packages = missing.map((m) => m.apt);
  if (!IS_ROOT || !which('apt-get')) {
    fail(
      `missing ${missing.map((m) => m.what).join(', ')}; install with \`apt-get install ${packages.join(' ')}\` (Debian/Ubuntu, as root), or use docker-compose.yml`,
    );
  }
  const started = Date.now();
  log(`installing ${packages.join(' ')} with apt-get (missing: ${missing.map((m) => m.what).join(', ')})`);
  if (packages.includes('postgresql')) preventDebianMainCluster();
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await runOk('apt-get', ['update', '-q'], { env });
  await runOk(
    'apt-get',
    ['install', '-y', '-q', '--no-install-recommends', '-o', 'Dpkg::Options::=--force-confold', ...packages],
    { env },
  );
  const still = missingPrerequisites();
  if (still.length > 0) fail(`still missing after apt-get: ${still.map((m) => m.what).join(', ')}`);
  log(`prerequisites installed in ${secs(started)}`);
}

// Debian's postgresql package creates and starts a "main" cluster on the first free port
// from 5432; if 5432 were taken it would land on ours. teal never uses it, so ask for none.
function preventDebianMainCluster() {
  const conf = '/etc/postgresql-common/createcluster.conf';
  if (fs.existsSync(conf)) return;
  fs.mkdirSync(path.dirname(conf), { recursive: true });
  fs.writeFileSync(
    conf,
    '# written by teal infra/local/env.mjs: no default cluster\ncreate_main_cluster = false\n',
  );
}
