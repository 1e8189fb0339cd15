/**
 * npm test starts or reuses PostgreSQL and Redis on localhost (TEST_PG_URL / TEST_REDIS_URL
 * override them). When one does not answer and this machine has the Debian services, it starts them.
 */
const { execSync } = require('node:child_process');
const net = require('node:net');

function answers(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.setTimeout(1000);
    s.once('connect', () => {
      s.end();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

async function waitFor(port, what) {
  for (let i = 0; i < 30; i += 1) {
    if (await answers(port)) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`${what} does not answer on 127.0.0.1:${port}; start it (see README, "Tests")`);
}

function tryRun(cmd) {
  try {
    execSync(cmd, { stdio: 'ignore' });
  } catch {
    /* reported by waitFor */
  }
}

module.exports = async function globalSetup() {
  const pg = new URL(process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  const redis = new URL(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
  const pgPort = Number(pg.port || 5432);
  const redisPort = Number(redis.port || 6379);
  const local = (h) => h === '127.0.0.1' || h === 'localhost';
  if (local(pg.hostname) && !(await answers(pgPort))) {
    tryRun('pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start');
  }
  if (local(redis.hostname) && !(await answers(redisPort))) {
    tryRun(`redis-server --daemonize yes --bind 127.0.0.1 --port ${redisPort} --save "" --appendonly no`);
  }
  await waitFor(pgPort, 'PostgreSQL');
  await waitFor(redisPort, 'Redis');
};
