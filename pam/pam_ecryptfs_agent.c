/*
 * pam_ecryptfs_agent.so — thin PAM client for the ecryptfs-agent.
 *
 * Implements docs/protocol.md (version 1) and nothing else: for each hook that needs work
 * it first asks the resident agent (a root service's worker on the unix socket `socket=`, whose
 * server must be root), and when there is none, or it answers result=spawn, forks and execs the
 * agent with a clean environment and process state.  Either way the agent gets the same request
 * (secrets only there, length-prefixed; the spawned agent on fd 0), the reply (on fd 1) is read
 * within `timeout=` seconds and mapped to a PAM return code.  Any failure (unsafe/missing agent,
 * exec failure, crash, timeout, malformed reply) is logged with pam_syslog and ends as the
 * hook's fallback return: this module never returns an error code, so it can never block
 * a login or a password change, and it never vouches for a password (auth is always
 * PAM_IGNORE).
 *
 * auth runs no agent: it keeps a copy of the password in the PAM handle (pam_set_data, locked
 * in RAM, wiped when dropped) and open_session hands it to the agent, which unlocks then. So a
 * login that PAM refuses after our auth line (a required pam_unix failing, an expired account)
 * never loads a key: open_session runs only for an accepted login.
 *
 * Logging only through pam_syslog; user-visible text only through the conversation
 * (pam_info/pam_error); secrets are never logged and every buffer that held one is
 * wiped with explicit_bzero.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>

#define PAM_EXPORT __attribute__((visibility("default")))

#define PROTO_HEADER "ECRYPTFS-AGENT 1"
#define DEFAULT_AGENT "/usr/lib/ecryptfs-agent/dist/agent/main.js"
#define DEFAULT_SOCKET "/run/ecryptfs-agent/agent.sock"
#define DEFAULT_TIMEOUT 5U
#define MAX_TIMEOUT 300U
#define SESSION_DATA_KEY "ecryptfs_agent_session"
#define AUTHTOK_DATA_KEY "ecryptfs_agent_authtok"
#define MAX_SECRET 512U /* PAM_MAX_RESP_SIZE */
#define MAX_REPLY 16384U
#define MAX_LINE 1024U  /* bytes of a reply line, without its '\n' */
#define MAX_MSGS 8U
#define MAX_SESSION 64U
#define KILL_GRACE_MS 500 /* how long to wait for the group to be reaped after SIGKILL */

/* ------------------------------------------------------------------------- options */

struct options {
	int unwrap;
	int debug;
	unsigned timeout;
	const char *agent;
	const char *socket; /* the resident agent's; NULL: socket=none */
};

static void parse_options(pam_handle_t *pamh, int argc, const char **argv, struct options *o)
{
	o->unwrap = 0;
	o->debug = 0;
	o->timeout = DEFAULT_TIMEOUT;
	o->agent = DEFAULT_AGENT;
	o->socket = DEFAULT_SOCKET;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (a == NULL)
			continue;
		if (strcmp(a, "unwrap") == 0) {
			o->unwrap = 1;
		} else if (strcmp(a, "debug") == 0) {
			o->debug = 1;
		} else if (strncmp(a, "timeout=", 8) == 0) {
			const char *v = a + 8;
			char *end = NULL;
			unsigned long t;
			errno = 0;
			t = (v[0] >= '0' && v[0] <= '9') ? strtoul(v, &end, 10) : 0;
			if (errno != 0 || end == NULL || *end != '\0' || t < 1 || t > MAX_TIMEOUT)
				pam_syslog(pamh, LOG_ERR, "invalid option \"%s\" (1..%u seconds) ignored; using %u",
				           a, MAX_TIMEOUT, DEFAULT_TIMEOUT);
			else
				o->timeout = (unsigned)t;
		} else if (strncmp(a, "agent=", 6) == 0) {
			o->agent = a + 6; /* validated by check_agent() before every exec */
		} else if (strncmp(a, "socket=", 7) == 0) {
			if (strcmp(a + 7, "none") == 0)
				o->socket = NULL;
			else if (a[7] == '/')
				o->socket = a + 7; /* its server's uid is checked (SO_PEERCRED) on every connection */
			else
				pam_syslog(pamh, LOG_ERR, "invalid option \"%s\" (an absolute path, or none) ignored", a);
		} else {
			pam_syslog(pamh, LOG_ERR, "unknown option \"%s\" ignored", a);
		}
	}
}

/* --------------------------------------------------------------- agent path check */

static int check_node(const struct stat *st, int want_dir, const char *path, char *why, size_t whylen)
{
	if (S_ISLNK(st->st_mode)) {
		snprintf(why, whylen, "%s is a symbolic link", path);
		return -1;
	}
	if (want_dir && !S_ISDIR(st->st_mode)) {
		snprintf(why, whylen, "%s is not a directory", path);
		return -1;
	}
	if (!want_dir && !S_ISREG(st->st_mode)) {
		snprintf(why, whylen, "%s is not a regular file", path);
		return -1;
	}
	if (st->st_uid != 0) {
		snprintf(why, whylen, "%s is not owned by root (uid %u)", path, (unsigned)st->st_uid);
		return -1;
	}
	/* A root-owned sticky directory (/tmp) is safe to pass through: only root may rename or
	 * remove the root-owned entries in it, and the next component must be root-owned too. */
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(want_dir && (st->st_mode & S_ISVTX))) {
		snprintf(why, whylen, "%s is writable by group or others (mode %04o)", path,
		         (unsigned)(st->st_mode & 07777));
		return -1;
	}
	if (!want_dir && !(st->st_mode & (S_IXUSR | S_IXGRP | S_IXOTH))) {
		snprintf(why, whylen, "%s is not executable (mode %04o)", path, (unsigned)(st->st_mode & 07777));
		return -1;
	}
	return 0;
}

/*
 * The agent must be an absolute path to a root-owned regular executable file, not
 * writable by group/other, and every directory above it (from "/") must be root-owned and
 * not writable by group/other, or sticky (like /tmp).  Walked with lstat(): a symlink
 * anywhere is refused.
 * As every component is then only modifiable by root, the path cannot be swapped between
 * this check and execve() by anyone but root.
 */
static int check_agent(const char *agent, char *why, size_t whylen)
{
	char path[PATH_MAX];
	struct stat st;
	size_t n = strlen(agent);

	if (n == 0 || agent[0] != '/') {
		snprintf(why, whylen, "agent path \"%s\" is not absolute", agent);
		return -1;
	}
	if (n >= sizeof(path)) {
		snprintf(why, whylen, "agent path is too long");
		return -1;
	}
	if (lstat("/", &st) != 0) {
		snprintf(why, whylen, "lstat /: %s", strerror(errno));
		return -1;
	}
	if (check_node(&st, 1, "/", why, whylen) != 0)
		return -1;

	size_t i = 0;
	for (;;) {
		while (agent[i] == '/')
			i++;
		if (agent[i] == '\0') {
			snprintf(why, whylen, "agent path \"%s\" names a directory", agent);
			return -1;
		}
		size_t start = i;
		while (agent[i] != '\0' && agent[i] != '/')
			i++;
		size_t clen = i - start;
		if ((clen == 1 && agent[start] == '.') || (clen == 2 && agent[start] == '.' && agent[start + 1] == '.')) {
			snprintf(why, whylen, "agent path \"%s\" contains a . or .. component", agent);
			return -1;
		}
		memcpy(path, agent, i);
		path[i] = '\0';
		int last = 1;
		for (size_t j = i; agent[j] != '\0'; j++)
			if (agent[j] != '/') {
				last = 0;
				break;
			}
		if (last && agent[i] == '/') {
			snprintf(why, whylen, "agent path \"%s\" names a directory", agent);
			return -1;
		}
		if (lstat(path, &st) != 0) {
			snprintf(why, whylen, "%s: %s", path, strerror(errno));
			return -1;
		}
		if (check_node(&st, !last, path, why, whylen) != 0)
			return -1;
		if (last)
			return 0;
	}
}

/* ------------------------------------------------------------------- request buffer */

struct buf {
	char *p;
	size_t len, cap;
	int failed;
};

/* Grows without realloc() so that no copy of a secret is left behind un-wiped. */
static void buf_add(struct buf *b, const void *data, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n)
			cap *= 2;
		char *np = malloc(cap);
		if (np == NULL) {
			b->failed = 1;
			return;
		}
		if (b->p != NULL) {
			memcpy(np, b->p, b->len);
			explicit_bzero(b->p, b->cap);
			free(b->p);
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_field(struct buf *b, const char *key, const char *value)
{
	buf_str(b, key);
	buf_str(b, "=");
	buf_str(b, value);
	buf_str(b, "\n");
}

static void buf_wipe(struct buf *b)
{
	if (b->p != NULL) {
		explicit_bzero(b->p, b->cap);
		free(b->p);
	}
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ------------------------------------------------------------------------- request */

struct secret {
	const char *name; /* "authtok" | "oldauthtok" */
	const char *value;
};

struct request {
	const char *phase;
	const char *user;
	const char *service, *tty, *rhost, *ruser;
	const char *session;
	int unwrap, debug, silent;
	struct secret secrets[2];
	unsigned nsecrets;
};

/* A value with a newline cannot be framed: it is sent empty, and logged. */
static const char *field_value(pam_handle_t *pamh, const char *key, const char *v)
{
	if (v == NULL)
		return "";
	if (strchr(v, '\n') != NULL) {
		pam_syslog(pamh, LOG_ERR, "%s contains a newline; sent empty to the agent", key);
		return "";
	}
	return v;
}

static const char *get_str_item(pam_handle_t *pamh, int item)
{
	const void *v = NULL;
	if (pam_get_item(pamh, item, &v) != PAM_SUCCESS)
		return NULL;
	return v;
}

static void build_request(pam_handle_t *pamh, const struct request *rq, struct buf *b)
{
	char num[64];

	buf_str(b, PROTO_HEADER "\n");
	buf_field(b, "phase", rq->phase);
	buf_field(b, "user", rq->user);
	buf_field(b, "service", field_value(pamh, "PAM_SERVICE", rq->service));
	buf_field(b, "tty", field_value(pamh, "PAM_TTY", rq->tty));
	buf_field(b, "rhost", field_value(pamh, "PAM_RHOST", rq->rhost));
	buf_field(b, "ruser", field_value(pamh, "PAM_RUSER", rq->ruser));
	snprintf(num, sizeof(num), "%ld", (long)getpid());
	buf_field(b, "pam_pid", num);
	buf_field(b, "session", field_value(pamh, "session id", rq->session));
	buf_field(b, "unwrap", rq->unwrap ? "1" : "0");
	buf_field(b, "debug", rq->debug ? "1" : "0");
	buf_field(b, "silent", rq->silent ? "1" : "0");
	for (unsigned i = 0; i < rq->nsecrets; i++) {
		size_t n = strlen(rq->secrets[i].value);
		snprintf(num, sizeof(num), "secret %s %zu\n", rq->secrets[i].name, n);
		buf_str(b, num);
		buf_add(b, rq->secrets[i].value, n);
		buf_str(b, "\n");
	}
	buf_str(b, "end\n");
}

/* --------------------------------------------------------------------------- reply */

/* RESULT_SPAWN: only from the resident agent ("serve this with a spawned agent") */
enum result { RESULT_NONE = 0, RESULT_SUCCESS, RESULT_IGNORE, RESULT_SPAWN };

struct reply {
	char data[MAX_REPLY + 1];
	size_t len;
	enum result result;
	struct {
		int style; /* PAM_TEXT_INFO | PAM_ERROR_MSG */
		const char *text;
	} msg[2 * MAX_MSGS]; /* in reply order */
	unsigned nmsg, ninfo, nerror;
	const char *session; /* NULL when absent */
};

static int valid_session_id(const char *s)
{
	size_t n = 0;
	for (; s[n] != '\0'; n++) {
		char c = s[n];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return n >= 1 && n <= MAX_SESSION;
}

/*
 * Strict parse of r->data[0..len) in place; on error returns -1 with a reason.  result=spawn is
 * accepted only with allow_spawn (the resident agent's socket), and only alone (header, result, end).
 */
static int parse_reply(struct reply *r, int allow_spawn, char *why, size_t whylen)
{
	char *p = r->data, *end = r->data + r->len;
	unsigned lineno = 0;
	int seen_end = 0;

	r->result = RESULT_NONE;
	r->nmsg = r->ninfo = r->nerror = 0;
	r->session = NULL;

	if (r->len == 0) {
		snprintf(why, whylen, "empty reply");
		return -1;
	}
	if (r->len > MAX_REPLY) {
		snprintf(why, whylen, "reply longer than %u bytes", MAX_REPLY);
		return -1;
	}
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		lineno++;
		if (seen_end) {
			snprintf(why, whylen, "data after the end line");
			return -1;
		}
		if (nl == NULL) {
			snprintf(why, whylen, "line %u not terminated (no end line)", lineno);
			return -1;
		}
		if ((size_t)(nl - p) > MAX_LINE) {
			snprintf(why, whylen, "line %u longer than %u bytes", lineno, MAX_LINE);
			return -1;
		}
		if (memchr(p, '\0', (size_t)(nl - p)) != NULL) {
			snprintf(why, whylen, "line %u contains a NUL byte", lineno);
			return -1;
		}
		*nl = '\0';
		if (lineno == 1) {
			if (strcmp(p, PROTO_HEADER) != 0) {
				snprintf(why, whylen, "bad header line");
				return -1;
			}
		} else if (lineno == 2) {
			if (strcmp(p, "result=success") == 0)
				r->result = RESULT_SUCCESS;
			else if (strcmp(p, "result=ignore") == 0)
				r->result = RESULT_IGNORE;
			else if (allow_spawn && strcmp(p, "result=spawn") == 0)
				r->result = RESULT_SPAWN;
			else {
				snprintf(why, whylen, "line 2 is not result=success|ignore%s", allow_spawn ? "|spawn" : "");
				return -1;
			}
		} else if (strncmp(p, "info=", 5) == 0) {
			if (r->ninfo == MAX_MSGS) {
				snprintf(why, whylen, "more than %u info lines", MAX_MSGS);
				return -1;
			}
			r->ninfo++;
			r->msg[r->nmsg].style = PAM_TEXT_INFO;
			r->msg[r->nmsg++].text = p + 5;
		} else if (strncmp(p, "error=", 6) == 0) {
			if (r->nerror == MAX_MSGS) {
				snprintf(why, whylen, "more than %u error lines", MAX_MSGS);
				return -1;
			}
			r->nerror++;
			r->msg[r->nmsg].style = PAM_ERROR_MSG;
			r->msg[r->nmsg++].text = p + 6;
		} else if (strncmp(p, "session=", 8) == 0) {
			if (r->session != NULL) {
				snprintf(why, whylen, "more than one session line");
				return -1;
			}
			if (!valid_session_id(p + 8)) {
				snprintf(why, whylen, "invalid session id");
				return -1;
			}
			r->session = p + 8;
		} else if (strcmp(p, "end") == 0) {
			seen_end = 1;
		} else {
			snprintf(why, whylen, "unexpected line %u", lineno);
			return -1;
		}
		p = nl + 1;
	}
	if (lineno < 2) {
		snprintf(why, whylen, "no result line");
		return -1;
	}
	if (!seen_end) {
		snprintf(why, whylen, "no end line");
		return -1;
	}
	if (r->result == RESULT_SPAWN && (r->nmsg != 0 || r->session != NULL)) {
		snprintf(why, whylen, "result=spawn with other lines");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ process helpers */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(long long deadline)
{
	long long r = deadline - now_ms();
	if (r < 0)
		return 0;
	if (r > INT_MAX)
		return INT_MAX;
	return (int)r;
}

static void close_from(int lowfd)
{
	if (close_range((unsigned)lowfd, ~0U, 0) == 0)
		return;
	struct rlimit rl;
	long max = 65536;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 1048576)
		max = (long)rl.rlim_max;
	for (long fd = lowfd; fd < max; fd++)
		close((int)fd);
}

/*
 * The limits the agent starts with, whatever the application (a setuid su or passwd run by the
 * user) inherited: a caller with `ulimit -f 0`, `-t 1`, `-v`, `-s`, `-n 16` must not make the
 * root agent die or fail at a point of the caller's choosing. Only ever raised, never lowered
 * (cores: always off). The same list as the agent's (src/os/credentials.ts AGENT_RLIMITS): the
 * limits that bind a root process.
 */
static const struct {
	int resource;
	rlim_t soft, hard; /* RLIM_INFINITY, or the minimum */
} agent_rlimits[] = {
	{ RLIMIT_CPU, RLIM_INFINITY, RLIM_INFINITY },
	{ RLIMIT_FSIZE, RLIM_INFINITY, RLIM_INFINITY },
	{ RLIMIT_DATA, RLIM_INFINITY, RLIM_INFINITY },
	{ RLIMIT_STACK, 8U << 20, RLIM_INFINITY },
	{ RLIMIT_NOFILE, 1024, 4096 },
	{ RLIMIT_AS, RLIM_INFINITY, RLIM_INFINITY },
};

static rlim_t raise_to(rlim_t want, rlim_t have)
{
	if (want == RLIM_INFINITY || have == RLIM_INFINITY)
		return RLIM_INFINITY;
	return want > have ? want : have;
}

/*
 * In the child, before execve: the agent must not inherit the caller's process state. Full root
 * ids (a setuid application runs with the user's real uid: the user could signal the agent) and
 * no supplementary groups, umask 022, the limits above, no core dumps, nice 0, oom_score_adj 0.
 * Raw system calls and async-signal-safe calls only (the application may be multi-threaded and
 * this is a forked child: glibc's set*id would try to signal threads that do not exist here).
 * Failures are ignored: the agent repeats all of it and logs what it could not set.
 */
static void reset_process_state(void)
{
	if (geteuid() == 0) {
		(void)syscall(SYS_setgroups, 0, NULL);
		(void)syscall(SYS_setresgid, 0, 0, 0);
		(void)syscall(SYS_setresuid, 0, 0, 0);
	}
	umask(022);
	for (size_t i = 0; i < sizeof(agent_rlimits) / sizeof(agent_rlimits[0]); i++) {
		struct rlimit rl;
		if (getrlimit(agent_rlimits[i].resource, &rl) != 0)
			continue;
		struct rlimit want = { raise_to(agent_rlimits[i].soft, rl.rlim_cur), raise_to(agent_rlimits[i].hard, rl.rlim_max) };
		if (want.rlim_max != RLIM_INFINITY && (want.rlim_cur == RLIM_INFINITY || want.rlim_cur > want.rlim_max))
			want.rlim_cur = want.rlim_max;
		if (want.rlim_cur == rl.rlim_cur && want.rlim_max == rl.rlim_max)
			continue;
		if (setrlimit(agent_rlimits[i].resource, &want) != 0 && want.rlim_max != rl.rlim_max) {
			/* no CAP_SYS_RESOURCE (a container's root): keep the hard limit, raise the soft one to it */
			want.rlim_max = rl.rlim_max;
			if (want.rlim_max != RLIM_INFINITY && (want.rlim_cur == RLIM_INFINITY || want.rlim_cur > want.rlim_max))
				want.rlim_cur = want.rlim_max;
			if (want.rlim_cur != rl.rlim_cur)
				(void)setrlimit(agent_rlimits[i].resource, &want);
		}
	}
	struct rlimit nocore = { 0, 0 };
	(void)setrlimit(RLIMIT_CORE, &nocore);
	(void)setpriority(PRIO_PROCESS, 0, 0);
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t w = write(fd, "0\n", 2);
		(void)w; /* best effort: the agent repeats it */
		close(fd);
	}
}

/* Only async-signal-safe calls: the PAM application may be multi-threaded. */
static void __attribute__((noreturn))
child_exec(const char *agent, int req_rd, int rep_wr)
{
	static const char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", NULL };
	const char *argv[] = { agent, "pam", NULL };
	struct sigaction sa;
	sigset_t empty;
	int in, out, nul;

	setpgid(0, 0);
	reset_process_state();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL); /* fails harmlessly for SIGKILL/SIGSTOP/libc-internal */
	sigemptyset(&empty);
	(void)sigprocmask(SIG_SETMASK, &empty, NULL);

	/* Move the pipe ends above 2 first: the application may have closed its stdio. */
	in = fcntl(req_rd, F_DUPFD_CLOEXEC, 3);
	out = fcntl(rep_wr, F_DUPFD_CLOEXEC, 3);
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (in < 0 || out < 0 || nul < 0)
		_exit(127);
	if (dup2(in, 0) != 0 || dup2(out, 1) != 1 || dup2(nul, 2) != 2)
		_exit(127);
	/* dup2() cleared O_CLOEXEC on 0..2; the pipes were created non-blocking for the parent. */
	(void)fcntl(0, F_SETFL, fcntl(0, F_GETFL) & ~O_NONBLOCK);
	(void)fcntl(1, F_SETFL, fcntl(1, F_GETFL) & ~O_NONBLOCK);
	close_from(3);
	if (chdir("/") != 0)
		_exit(127);

	execve(agent, (char *const *)argv, (char *const *)envp);
	_exit(127);
}

/* Waits until fd is ready for events or the deadline passes. Returns 0, or -1 with *err set. */
static int wait_ready(int fd, short events, long long deadline, int *err)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int ms = remaining_ms(deadline);
		if (ms == 0) {
			*err = ETIMEDOUT;
			return -1;
		}
		int pr = poll(&pfd, 1, ms);
		if (pr > 0)
			return 0;
		if (pr < 0 && errno != EINTR) {
			*err = errno;
			return -1;
		}
		/* EINTR, or poll's own timeout: re-evaluated against the deadline */
	}
}

/* Writes all of data to fd before the deadline. Returns 0, or -1 with *err set. */
static int write_all(int fd, const char *data, size_t len, long long deadline, int *err)
{
	size_t off = 0;
	while (off < len) {
		if (wait_ready(fd, POLLOUT, deadline, err) != 0)
			return -1;
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			*err = errno;
			return -1;
		}
		off += (size_t)w;
	}
	return 0;
}

/*
 * Writes the request with SIGPIPE blocked for this thread, so that an agent that exits
 * early yields EPIPE instead of killing the application; a SIGPIPE we caused is consumed.
 */
static int write_request(int fd, const char *data, size_t len, long long deadline, int *err)
{
	sigset_t pipeset, oldmask, pending;
	int was_pending, rc;

	sigemptyset(&pipeset);
	sigaddset(&pipeset, SIGPIPE);
	sigemptyset(&pending);
	(void)sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	(void)pthread_sigmask(SIG_BLOCK, &pipeset, &oldmask);

	rc = write_all(fd, data, len, deadline, err);

	if (rc != 0 && *err == EPIPE && !was_pending) {
		const struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipeset, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	(void)pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
	return rc;
}

/* Reads until EOF, the deadline, or more than MAX_REPLY bytes. 0=EOF, 1=too long, -1=timeout/error. */
static int read_reply(int fd, struct reply *r, long long deadline, int *err)
{
	r->len = 0;
	for (;;) {
		if (wait_ready(fd, POLLIN, deadline, err) != 0)
			return -1;
		ssize_t n = read(fd, r->data + r->len, sizeof(r->data) - r->len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			/* A socket whose worker closed it without reading all of the request (a worker
			 * answering result=spawn reads none): what it wrote before is all there is, and
			 * it is parsed as strictly as ever. */
			if (errno == ECONNRESET)
				return 0;
			*err = errno;
			return -1;
		}
		if (n == 0)
			return 0;
		r->len += (size_t)n;
		if (r->len > MAX_REPLY)
			return 1;
	}
}

enum wait_outcome { WAIT_EXITED, WAIT_TIMEOUT, WAIT_ECHILD };

/* Waits for pid until the deadline, sleeping in short steps (no blocking waitpid). */
static enum wait_outcome wait_until(pid_t pid, long long deadline, int *status)
{
	int step = 1;
	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			return WAIT_EXITED;
		if (w < 0 && errno == ECHILD)
			return WAIT_ECHILD;
		if (w < 0 && errno != EINTR)
			return WAIT_ECHILD;
		int ms = remaining_ms(deadline);
		if (ms == 0)
			return WAIT_TIMEOUT;
		(void)poll(NULL, 0, step < ms ? step : ms);
		if (step < 20)
			step *= 2;
	}
}

/* ------------------------------------------------------------------- run the agent */

enum exchange_outcome { EX_REPLY, EX_TOO_LONG, EX_TIMEOUT, EX_NOMEM, EX_WRITE_ERR, EX_READ_ERR };

/*
 * The transport-independent half of a run: builds the request, writes it to wfd before the
 * deadline, ends it (closes wfd; on a socket, where wfd == rfd, shuts down the sending side so
 * that the worker sees EOF) and reads the reply from rfd until EOF or the deadline.  The request
 * buffer, the only copy of the secrets made here, is wiped as soon as it is written; the request
 * is ended whatever the outcome.  EX_REPLY: r->len bytes read, not yet parsed; EX_WRITE_ERR and
 * EX_READ_ERR: *err set.
 */
static enum exchange_outcome exchange(pam_handle_t *pamh, const struct request *rq, int wfd, int rfd,
                                      long long deadline, struct reply *r, int *err)
{
	struct buf b = { NULL, 0, 0, 0 };
	int wrc = -1;

	r->len = 0;
	build_request(pamh, rq, &b);
	if (!b.failed)
		wrc = write_request(wfd, b.p, b.len, deadline, err);
	int failed = b.failed;
	buf_wipe(&b);
	if (wfd == rfd)
		(void)shutdown(wfd, SHUT_WR);
	else
		close(wfd);
	if (failed)
		return EX_NOMEM;
	if (wrc != 0 && *err == ETIMEDOUT)
		return EX_TIMEOUT;
	if (wrc != 0 && *err != EPIPE)
		return EX_WRITE_ERR;
	/* EPIPE: the agent stopped reading, but it may have replied first (a worker's result=spawn) */
	int rrc = read_reply(rfd, r, deadline, err);
	if (rrc == 1)
		return EX_TOO_LONG;
	if (rrc < 0)
		return *err == ETIMEDOUT ? EX_TIMEOUT : EX_READ_ERR;
	return EX_REPLY;
}

/*
 * Transport 1: fork and exec the agent; the request on its fd 0, the reply on its fd 1.
 * Returns 0 with *r parsed, or -1 after logging exactly one line with the reason.
 */
static int spawn_agent(pam_handle_t *pamh, const struct options *o, const struct request *rq, struct reply *r)
{
	char why[PATH_MAX + 128];
	int req[2] = { -1, -1 }, rep[2] = { -1, -1 };
	struct sigaction dfl, old_chld;
	pid_t pid;
	int ret = -1, err = 0, status = 0;
	long long deadline;

	if (check_agent(o->agent, why, sizeof(why)) != 0) {
		pam_syslog(pamh, LOG_ERR, "refusing to run the agent: %s", why);
		return -1;
	}
	if (pipe2(req, O_CLOEXEC | O_NONBLOCK) != 0) {
		pam_syslog(pamh, LOG_ERR, "pipe: %m");
		return -1;
	}
	if (pipe2(rep, O_CLOEXEC | O_NONBLOCK) != 0) {
		pam_syslog(pamh, LOG_ERR, "pipe: %m");
		close(req[0]);
		close(req[1]);
		return -1;
	}

	/* Like pam_unix around unix_chkpwd: make sure we, not the application, reap the child. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	(void)sigaction(SIGCHLD, &dfl, &old_chld);

	/*
	 * Block every signal across fork() so that none of the application's handlers can
	 * run in the child before child_exec() has reset the dispositions (like posix_spawn).
	 */
	sigset_t all, oldmask;
	sigfillset(&all);
	(void)pthread_sigmask(SIG_SETMASK, &all, &oldmask);
	deadline = now_ms() + (long long)o->timeout * 1000;
	pid = fork();
	if (pid == 0)
		child_exec(o->agent, req[0], rep[1]);
	int fork_errno = errno;
	(void)pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
	if (pid < 0) {
		errno = fork_errno;
		pam_syslog(pamh, LOG_ERR, "fork: %m");
		close(req[0]);
		close(req[1]);
		close(rep[0]);
		close(rep[1]);
		(void)sigaction(SIGCHLD, &old_chld, NULL);
		return -1;
	}

	/* Also from the parent, so that kill(-pid) works even if the child has not run yet. */
	(void)setpgid(pid, pid);
	close(req[0]);
	close(rep[1]);

	/* The request is built after fork() (in exchange()): no copy of the secrets in the child's
	 * memory before execve() (the kept password's pages are MADV_WIPEONFORK: the child sees zeros). */
	enum exchange_outcome x = exchange(pamh, rq, req[1], rep[0], deadline, r, &err);
	close(rep[0]);
	if (x == EX_NOMEM || x == EX_TOO_LONG) {
		/* An over-long reply is malformed whatever follows: do not wait for the rest. */
		kill(-pid, SIGKILL);
		(void)wait_until(pid, now_ms() + KILL_GRACE_MS, &status);
		if (x == EX_NOMEM)
			pam_syslog(pamh, LOG_ERR, "out of memory building the request");
		else
			pam_syslog(pamh, LOG_ERR, "malformed agent reply: longer than %u bytes", MAX_REPLY);
		goto out;
	}

	enum wait_outcome wo = WAIT_TIMEOUT;
	if (x != EX_TIMEOUT)
		wo = wait_until(pid, deadline, &status);
	if (wo == WAIT_TIMEOUT) {
		kill(-pid, SIGKILL);
		if (wait_until(pid, now_ms() + KILL_GRACE_MS, &status) == WAIT_TIMEOUT)
			pam_syslog(pamh, LOG_ERR, "agent timed out after %u s; killed, but not yet reaped", o->timeout);
		else
			pam_syslog(pamh, LOG_ERR, "agent timed out after %u s", o->timeout);
		goto out;
	}
	if (x == EX_WRITE_ERR) {
		pam_syslog(pamh, LOG_ERR, "writing the request: %s", strerror(err));
		goto out;
	}
	if (x == EX_READ_ERR) {
		pam_syslog(pamh, LOG_ERR, "reading the reply: %s", strerror(err));
		goto out;
	}
	if (wo == WAIT_EXITED) {
		if (WIFSIGNALED(status)) {
			pam_syslog(pamh, LOG_ERR, "agent killed by signal %d", WTERMSIG(status));
			goto out;
		}
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
			pam_syslog(pamh, LOG_ERR, "agent exited with status %d%s", WEXITSTATUS(status),
			           WEXITSTATUS(status) == 127 ? " (exec failed?)" : "");
			goto out;
		}
	} else if (o->debug) {
		pam_syslog(pamh, LOG_DEBUG, "agent already reaped by the application; exit status unknown");
	}
	if (parse_reply(r, 0, why, sizeof(why)) != 0) {
		pam_syslog(pamh, LOG_ERR, "malformed agent reply: %s", why);
		goto out;
	}
	ret = 0;
out:
	(void)sigaction(SIGCHLD, &old_chld, NULL);
	return ret;
}

enum resident { RESIDENT_SERVED, RESIDENT_FAILED, RESIDENT_NONE };

/*
 * Transport 2: the resident agent's socket (docs/protocol.md, "Transport: the resident agent's
 * socket").  A worker of a root service reads the same request until EOF and writes the same
 * reply; closing the connection kills it, as the spawned agent's group is killed.
 *   RESIDENT_SERVED  *r parsed.
 *   RESIDENT_NONE    no usable socket, a server that is not root, or result=spawn: spawn the
 *                    agent, with the whole timeout (connecting to a unix socket does not wait).
 *   RESIDENT_FAILED  timed out, or no valid reply: logged (one line), the hook's fallback, no
 *                    spawn (the time is used up; a worker that failed is not asked twice).
 */
static enum resident ask_resident(pam_handle_t *pamh, const struct options *o, const struct request *rq, struct reply *r)
{
	struct sockaddr_un sa;
	struct ucred cred;
	socklen_t credlen = sizeof(cred);
	char why[128];
	int err = 0;

	if (o->socket == NULL)
		return RESIDENT_NONE;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	size_t n = strlen(o->socket);
	if (n >= sizeof(sa.sun_path)) {
		pam_syslog(pamh, LOG_WARNING, "resident agent socket path longer than %zu bytes; spawning the agent",
		           sizeof(sa.sun_path) - 1);
		return RESIDENT_NONE;
	}
	memcpy(sa.sun_path, o->socket, n + 1);

	long long deadline = now_ms() + (long long)o->timeout * 1000;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		pam_syslog(pamh, LOG_WARNING, "resident agent: socket: %m; spawning the agent");
		return RESIDENT_NONE;
	}
	if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		close(fd);
		/* ENOENT: no resident agent installed or started, the usual case: not worth a line.
		 * ECONNREFUSED (nobody listening), EAGAIN (backlog full), EACCES, ENOTSOCK, …: logged. */
		if (e != ENOENT)
			pam_syslog(pamh, LOG_WARNING, "resident agent at %s: %s; spawning the agent", o->socket, strerror(e));
		return RESIDENT_NONE;
	}
	memset(&cred, 0, sizeof(cred));
	cred.uid = (uid_t)-1; /* stays so unless the kernel filled it in */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) != 0) {
		pam_syslog(pamh, LOG_ERR, "resident agent at %s: SO_PEERCRED: %m; spawning the agent", o->socket);
		close(fd);
		return RESIDENT_NONE;
	}
	if (cred.uid != 0) {
		pam_syslog(pamh, LOG_ERR, "refusing the socket %s: its server is not root (uid %ld, pid %ld); spawning the agent",
		           o->socket, (long)(int)cred.uid, (long)cred.pid);
		close(fd);
		return RESIDENT_NONE;
	}

	enum exchange_outcome x = exchange(pamh, rq, fd, fd, deadline, r, &err);
	close(fd); /* a worker still busy (timed out) is killed when we hang up */
	switch (x) {
	case EX_REPLY:
		break;
	case EX_TIMEOUT:
		pam_syslog(pamh, LOG_ERR, "agent timed out after %u s (resident agent at %s; hung up)", o->timeout, o->socket);
		return RESIDENT_FAILED;
	case EX_TOO_LONG:
		pam_syslog(pamh, LOG_ERR, "malformed agent reply: longer than %u bytes (resident agent at %s)", MAX_REPLY, o->socket);
		return RESIDENT_FAILED;
	case EX_NOMEM:
		pam_syslog(pamh, LOG_ERR, "out of memory building the request");
		return RESIDENT_FAILED;
	case EX_WRITE_ERR:
	case EX_READ_ERR:
		pam_syslog(pamh, LOG_ERR, "%s: %s (resident agent at %s)",
		           x == EX_WRITE_ERR ? "writing the request" : "reading the reply", strerror(err), o->socket);
		return RESIDENT_FAILED;
	}
	if (parse_reply(r, 1, why, sizeof(why)) != 0) {
		pam_syslog(pamh, LOG_ERR, "malformed agent reply: %s (resident agent at %s)", why, o->socket);
		return RESIDENT_FAILED;
	}
	if (r->result == RESULT_SPAWN) {
		if (o->debug)
			pam_syslog(pamh, LOG_DEBUG, "%s: the resident agent at %s answered result=spawn; spawning the agent",
			           rq->phase, o->socket);
		return RESIDENT_NONE;
	}
	return RESIDENT_SERVED;
}

/*
 * Runs the agent for one request: the resident agent when its socket serves it, else a spawned
 * one.  Returns 0 with *r parsed (result=success|ignore) and *how naming the path that served
 * it, or -1 after logging the reason.
 */
static int run_agent(pam_handle_t *pamh, const struct options *o, const struct request *rq, struct reply *r,
                     const char **how)
{
	switch (ask_resident(pamh, o, rq, r)) {
	case RESIDENT_SERVED:
		*how = "served by the resident agent";
		return 0;
	case RESIDENT_FAILED:
		return -1;
	case RESIDENT_NONE:
		break;
	}
	*how = "spawned the agent";
	return spawn_agent(pamh, o, rq, r);
}

static void show_messages(pam_handle_t *pamh, int flags, const struct reply *r)
{
	if (flags & PAM_SILENT)
		return;
	for (unsigned i = 0; i < r->nmsg; i++) {
		if (r->msg[i].style == PAM_ERROR_MSG)
			(void)pam_error(pamh, "%s", r->msg[i].text);
		else
			(void)pam_info(pamh, "%s", r->msg[i].text);
	}
}

static void cleanup_session(pam_handle_t *pamh, void *data, int error_status)
{
	(void)pamh;
	(void)error_status;
	free(data);
}

/*
 * The password auth keeps for open_session: in its own pages (so mlock covers exactly them),
 * locked in RAM when the limits allow, wiped and freed when PAM drops it (replaced, unset after
 * open_session, or pam_end: also in a child that ends with PAM_DATA_SILENT).
 */
struct authtok_stash {
	size_t map_len;
	size_t len;
	int unwrap;
	char tok[];
};

static void cleanup_authtok(pam_handle_t *pamh, void *data, int error_status)
{
	struct authtok_stash *st = data;
	(void)pamh;
	(void)error_status;
	if (st == NULL)
		return;
	size_t map_len = st->map_len;
	explicit_bzero(st, map_len);
	(void)munlock(st, map_len);
	(void)munmap(st, map_len);
}

static void drop_stashed_authtok(pam_handle_t *pamh);

/* Keeps tok (replacing what was kept); returns 0, or -1 with nothing kept (logged). */
static int stash_authtok(pam_handle_t *pamh, int unwrap, const char *tok)
{
	size_t len = strlen(tok);
	size_t map_len = sizeof(struct authtok_stash) + len + 1;
	struct authtok_stash *st = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (st == MAP_FAILED) {
		pam_syslog(pamh, LOG_ERR, "cannot keep the password for open_session: %m");
		drop_stashed_authtok(pamh); /* never an older password in its place */
		return -1;
	}
	(void)mlock(st, map_len);
	(void)madvise(st, map_len, MADV_DONTDUMP);
	/* a child forked by the application (or by us, before execve) sees zeros, not the password */
	(void)madvise(st, map_len, MADV_WIPEONFORK);
	st->map_len = map_len;
	st->len = len;
	st->unwrap = unwrap;
	memcpy(st->tok, tok, len + 1);
	if (pam_set_data(pamh, AUTHTOK_DATA_KEY, st, cleanup_authtok) != PAM_SUCCESS) {
		cleanup_authtok(pamh, st, 0);
		drop_stashed_authtok(pamh);
		pam_syslog(pamh, LOG_ERR, "cannot keep the password for open_session");
		return -1;
	}
	return 0;
}

static const struct authtok_stash *stashed_authtok(pam_handle_t *pamh)
{
	const void *data = NULL;
	if (pam_get_data(pamh, AUTHTOK_DATA_KEY, &data) != PAM_SUCCESS)
		return NULL;
	return data;
}

/* Used once: wiped as soon as open_session has handed it over (its cleanup runs on unset). */
static void drop_stashed_authtok(pam_handle_t *pamh)
{
	if (stashed_authtok(pamh) != NULL)
		(void)pam_set_data(pamh, AUTHTOK_DATA_KEY, NULL, NULL);
}

/* ------------------------------------------------------------------------- the hooks */

enum phase { PH_OPEN, PH_CLOSE, PH_CHAUTHTOK };
static const char *const phase_names[] = { "open_session", "close_session", "chauthtok" };

/*
 * The agent failed (killed, timed out, crashed, refused to run): the log has the reason, but the
 * user must not be left with a login or a password change that silently did half the job.
 * Logout has no one left to tell.
 */
static void tell_user_agent_failed(pam_handle_t *pamh, int flags, enum phase ph)
{
	if (flags & PAM_SILENT)
		return;
	if (ph == PH_OPEN)
		(void)pam_error(pamh, "ecryptfs-agent failed; your encrypted directory may still be locked. "
		                      "Try: ecryptfs-agent unlock (the system log has the reason)");
	else if (ph == PH_CHAUTHTOK)
		(void)pam_error(pamh, "ecryptfs-agent failed during the password change; if you use an encrypted "
		                      "directory, check it with: ecryptfs-agent status (the system log has the reason)");
}

/*
 * Shared body of the hooks that run the agent.  fallback is PAM_IGNORE for every hook;
 * on_success is what result=success maps to.
 */
static int run_hook(pam_handle_t *pamh, int flags, int argc, const char **argv, enum phase ph, int on_success)
{
	struct options o;
	struct request rq;
	const char *user = NULL;
	const char *what = phase_names[ph];
	const char *how = "";
	struct reply *r = NULL;
	int rc = PAM_IGNORE;

	parse_options(pamh, argc, argv, &o);
	memset(&rq, 0, sizeof(rq));
	rq.phase = what;
	rq.unwrap = o.unwrap;
	rq.debug = o.debug;
	rq.silent = (flags & PAM_SILENT) != 0;

	int gu = pam_get_user(pamh, &user, NULL);
	if (gu != PAM_SUCCESS || user == NULL || user[0] == '\0') {
		pam_syslog(pamh, LOG_ERR, "%s: cannot determine the user: %s", what,
		           gu != PAM_SUCCESS ? pam_strerror(pamh, gu) : "empty user name");
		goto fallback;
	}
	if (strchr(user, '\n') != NULL) {
		pam_syslog(pamh, LOG_ERR, "%s: user name contains a newline; agent not run", what);
		goto fallback;
	}
	rq.user = user;
	rq.service = get_str_item(pamh, PAM_SERVICE);
	rq.tty = get_str_item(pamh, PAM_TTY);
	rq.rhost = get_str_item(pamh, PAM_RHOST);
	rq.ruser = get_str_item(pamh, PAM_RUSER);

	if (ph == PH_CLOSE) {
		const void *sid = NULL;
		if (pam_get_data(pamh, SESSION_DATA_KEY, &sid) == PAM_SUCCESS)
			rq.session = sid;
	}

	if (ph == PH_OPEN) {
		const struct authtok_stash *st = stashed_authtok(pamh);
		if (st != NULL) {
			/* the auth line's `unwrap` decides how the password is used */
			rq.unwrap = st->unwrap;
			rq.secrets[rq.nsecrets++] = (struct secret){ "authtok", st->tok };
		}
	}

	if (ph == PH_CHAUTHTOK) {
		const char *tok = get_str_item(pamh, PAM_AUTHTOK);
		if (tok == NULL) {
			if (o.debug)
				pam_syslog(pamh, LOG_DEBUG, "%s: PAM_AUTHTOK not set; agent not run; PAM_IGNORE", what);
			return PAM_IGNORE;
		}
		if (strlen(tok) > MAX_SECRET) {
			pam_syslog(pamh, LOG_ERR, "%s: PAM_AUTHTOK longer than %u bytes; agent not run", what, MAX_SECRET);
			goto fallback;
		}
		rq.secrets[rq.nsecrets++] = (struct secret){ "authtok", tok };
		const char *old = get_str_item(pamh, PAM_OLDAUTHTOK);
		if (old != NULL) {
			if (strlen(old) > MAX_SECRET) {
				pam_syslog(pamh, LOG_ERR, "%s: PAM_OLDAUTHTOK longer than %u bytes; agent not run", what, MAX_SECRET);
				goto fallback;
			}
			rq.secrets[rq.nsecrets++] = (struct secret){ "oldauthtok", old };
		}
	}

	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		pam_syslog(pamh, LOG_ERR, "%s: out of memory", what);
		goto fallback;
	}
	if (run_agent(pamh, &o, &rq, r, &how) != 0)
		goto fallback; /* run_agent logged why */

	if (ph == PH_OPEN)
		drop_stashed_authtok(pamh);
	if (ph == PH_CHAUTHTOK && r->result == RESULT_SUCCESS) {
		/* An expired password changed between auth and open_session (login's, sshd's flow): the
		 * file is wrapped with the new password now, so that is the one open_session needs. */
		const struct authtok_stash *st = stashed_authtok(pamh);
		if (st != NULL)
			(void)stash_authtok(pamh, st->unwrap, rq.secrets[0].value);
	}
	show_messages(pamh, flags, r);
	if (ph == PH_OPEN && r->session != NULL) {
		char *sid = strdup(r->session);
		if (sid == NULL || pam_set_data(pamh, SESSION_DATA_KEY, sid, cleanup_session) != PAM_SUCCESS) {
			free(sid);
			pam_syslog(pamh, LOG_ERR, "%s: cannot store the session id", what);
		}
	}
	rc = r->result == RESULT_SUCCESS ? on_success : PAM_IGNORE;
	if (o.debug)
		pam_syslog(pamh, LOG_DEBUG, "%s: agent result=%s (%u info, %u error%s); %s; %s", what,
		           r->result == RESULT_SUCCESS ? "success" : "ignore", r->ninfo, r->nerror,
		           r->session ? ", session id" : "", how, rc == PAM_SUCCESS ? "PAM_SUCCESS" : "PAM_IGNORE");
	explicit_bzero(r, sizeof(*r));
	free(r);
	return rc;

fallback:
	if (ph == PH_OPEN)
		drop_stashed_authtok(pamh);
	if (o.debug)
		pam_syslog(pamh, LOG_DEBUG, "%s: agent failed or not run; PAM_IGNORE", what);
	tell_user_agent_failed(pamh, flags, ph);
	if (r != NULL) {
		explicit_bzero(r, sizeof(*r));
		free(r);
	}
	return PAM_IGNORE;
}

PAM_EXPORT int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	/* Keeps PAM_AUTHTOK for open_session (see the top of this file); never vouches for it. */
	struct options o;
	const void *tok = NULL;
	(void)flags;
	parse_options(pamh, argc, argv, &o);
	if (pam_get_item(pamh, PAM_AUTHTOK, &tok) != PAM_SUCCESS || tok == NULL || ((const char *)tok)[0] == '\0') {
		drop_stashed_authtok(pamh); /* a retry without a password must not reuse an older one */
		if (o.debug)
			pam_syslog(pamh, LOG_DEBUG, "auth: PAM_AUTHTOK not set; nothing kept; PAM_IGNORE");
		return PAM_IGNORE;
	}
	if (strlen(tok) > MAX_SECRET) {
		drop_stashed_authtok(pamh);
		pam_syslog(pamh, LOG_ERR, "auth: PAM_AUTHTOK longer than %u bytes; not kept", MAX_SECRET);
		return PAM_IGNORE;
	}
	if (stash_authtok(pamh, o.unwrap, tok) == 0 && o.debug)
		pam_syslog(pamh, LOG_DEBUG, "auth: password kept for open_session; PAM_IGNORE");
	return PAM_IGNORE;
}

PAM_EXPORT int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct options o;
	(void)flags;
	parse_options(pamh, argc, argv, &o);
	if (o.debug)
		pam_syslog(pamh, LOG_DEBUG, "setcred: nothing to do; PAM_IGNORE");
	return PAM_IGNORE;
}

PAM_EXPORT int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	return run_hook(pamh, flags, argc, argv, PH_OPEN, PAM_SUCCESS);
}

PAM_EXPORT int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	return run_hook(pamh, flags, argc, argv, PH_CLOSE, PAM_SUCCESS);
}

PAM_EXPORT int pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	if (!(flags & PAM_UPDATE_AUTHTOK)) {
		struct options o;
		parse_options(pamh, argc, argv, &o);
		if (o.debug)
			pam_syslog(pamh, LOG_DEBUG, "chauthtok: %s pass; PAM_IGNORE",
			           (flags & PAM_PRELIM_CHECK) ? "preliminary" : "unknown");
		return PAM_IGNORE;
	}
	return run_hook(pamh, flags, argc, argv, PH_CHAUTHTOK, PAM_SUCCESS);
}
