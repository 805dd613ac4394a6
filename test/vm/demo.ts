/**
 * The README's first command: a full login → unlock → logout through the real PAM module,
 * step by step with captions. In a VM with Debian's kernel when this kernel has no eCryptfs
 * (it says which accelerator), directly on this machine when it has it.
 *   node dist/test/vm/demo.js
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runInVm } from './vm';

const REPO = join(__dirname, '..', '..', '..');

export function demoScript(repo: string): string {
  return `
set -u
MOD=${repo}/build/Release/pam_ecryptfs_agent.so
AGENT=${repo}/dist/agent/main.js
say() { printf '\\n=== %s\\n' "$*"; }
run() { printf '$ %s\\n' "$*"; "$@"; }
as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --init-groups --reset-env "$@"; }
modprobe ecryptfs 2>/dev/null
[ -e /dev/log ] || { busybox syslogd -n -O /tmp/demo-syslog & sleep 0.3; }
U=demo; PW='demo-Passw0rd'
say "A user with an encrypted Private directory, set up by ecryptfs-utils' own ecryptfs-setup-private"
id $U >/dev/null 2>&1 || { useradd -m -s /bin/bash $U; echo "$U:$PW" | chpasswd; }
as $U env HOME=/home/$U keyctl session - ecryptfs-setup-private --nopwcheck -l "$PW" -m 'demo mount passphrase' 2>&1 >/dev/null | grep -v -e '^stty:' -e '^Joined session keyring'
run ls -la /home/$U/.ecryptfs
cat > /etc/pam.d/private-demo <<PAM
auth     required  pam_unix.so
auth     optional  $MOD unwrap agent=$AGENT timeout=120
account  required  pam_unix.so
session  optional  pam_keyinit.so force revoke
session  required  pam_unix.so
session  optional  $MOD agent=$AGENT timeout=120
PAM
say "The PAM service: pam_unix, then our module (auth: unwrap the key; session: mount/unmount)"
run cat /etc/pam.d/private-demo
say "Before login: ~/Private is locked (only the lower mount point), no key in the user keyring"
run ls -la /home/$U/Private
as $U sh -c 'echo "user keys: $(grep -c " user " /proc/keys)"'
say "Login with the password (pamtester authenticate + open_session)"
echo "$PW" | pamtester private-demo $U authenticate open_session
say "After login: ~/Private is an eCryptfs mount of ~/.Private"
run grep " /home/$U/Private " /proc/self/mountinfo
say "The auth tokens in the user keyring (description = sig from ~/.ecryptfs/Private.sig)"
run cat /home/$U/.ecryptfs/Private.sig
as $U grep " user " /proc/keys
say "Plaintext above: the user writes a file into ~/Private"
as $U sh -c 'echo "meet at noon" > ~/Private/note.txt; ls -l ~/Private; cat ~/Private/note.txt'
say "Ciphertext below: the same file in ~/.Private (encrypted name and content)"
run ls -l /home/$U/.Private
f=$(find /home/$U/.Private -type f | head -n1); run sh -c "head -c 96 '$f' | od -An -c | head -n 4"
say "Logout (close_session): the last session ends, ~/Private is unmounted and the keys unlinked"
pamtester private-demo $U close_session
run sh -c "grep ' /home/$U/Private ' /proc/self/mountinfo || echo 'not mounted'"
as $U sh -c 'echo "user keys: $(grep -c " user " /proc/keys)"'
run ls -la /home/$U/Private
say "What the agent logged (syslog authpriv, tag ecryptfs-agent)"
grep -h -e 'ecryptfs-agent\\[' -e 'pam_ecryptfs_agent' /tmp/demo-syslog /var/log/auth.log 2>/dev/null | sed 's/^.* \\(ecryptfs-agent\\[\\)/\\1/' || true
say "Demo done"
`;
}

function kernelHasEcryptfs(): boolean {
  if (existsSync('/sys/fs/ecryptfs')) return true;
  return spawnSync('modprobe', ['-q', 'ecryptfs']).status === 0 && existsSync('/sys/fs/ecryptfs');
}

async function main(): Promise<number> {
  const script = demoScript(REPO);
  if (kernelHasEcryptfs()) {
    process.stdout.write('This kernel has eCryptfs: running the demo directly on this machine.\n');
    return spawnSync('bash', ['-c', script], { stdio: 'inherit' }).status ?? 1;
  }
  process.stdout.write('This kernel has no eCryptfs module: running the demo in a VM with Debian\'s kernel.\n');
  const r = await runInVm({ script, mode: 'fast', timeoutMs: 15 * 60_000, onOutput: (c) => process.stdout.write(c) });
  process.stdout.write(`\n(VM: accelerator ${r.accel}, boot ${r.bootMs} ms, total ${r.totalMs} ms)\n`);
  return r.exitCode;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`demo failed: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
