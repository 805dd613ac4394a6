/**
 * syslog capture for host tests: a python3 SOCK_DGRAM listener bound at /dev/log (libc's fixed
 * path; there is no syslog daemon on these machines), streaming each datagram as one JSON line.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class SyslogCapture {
  private proc: ChildProcess | undefined;
  private buf = '';
  readonly msgs: string[] = [];

  /** Binds /dev/log once it is free (waits up to 2 min for another test's listener); false if it never is. */
  async start(): Promise<boolean> {
    for (let i = 0; i < 240 && existsSync('/dev/log'); i++) await sleep(500);
    if (existsSync('/dev/log')) return false;
    const py = [
      'import socket,sys,json,os',
      's=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); s.bind("/dev/log"); os.chmod("/dev/log",0o666)',
      'print("ready",flush=True)',
      'while True:',
      '  d=s.recv(65536)',
      '  print(json.dumps(d.decode("utf8","replace")),flush=True)',
    ].join('\n');
    this.proc = spawn('python3', ['-c', py], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.proc.stdout!.setEncoding('utf8');
    await new Promise<void>((res) => {
      this.proc!.stdout!.on('data', (d: string) => {
        this.buf += d;
        let nl;
        while ((nl = this.buf.indexOf('\n')) >= 0) {
          const line = this.buf.slice(0, nl);
          this.buf = this.buf.slice(nl + 1);
          if (line === 'ready') res();
          else this.msgs.push(JSON.parse(line) as string);
        }
      });
    });
    return true;
  }

  /** The agent's lines (message part) for pid, waiting briefly for the datagrams to arrive. */
  async linesOf(pid: number, atLeast = 1): Promise<string[]> {
    const mine = () => this.msgs.filter((m) => m.includes(`ecryptfs-agent[${pid}]: `)).map((m) => m.slice(m.indexOf(']: ') + 3));
    // until at least `atLeast` lines came and none for 150 ms (at most 5 s: the host is shared)
    let seen = -1;
    let quiet = 0;
    for (let i = 0; i < 200 && (mine().length < atLeast || quiet < 6); i++) {
      await sleep(25);
      const n = mine().length;
      quiet = n === seen ? quiet + 1 : 0;
      seen = n;
    }
    return mine();
  }

  stop(): void {
    this.proc?.kill('SIGKILL');
    rmSync('/dev/log', { force: true });
  }
}
