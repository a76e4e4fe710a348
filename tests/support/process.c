/* Child processes and files for tests (see process.h). */
#include "process.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define POLL_INTERVAL_MS 20

static long long monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The environment for the child: ours without the names env_extra sets,
 * then env_extra. The strings are borrowed; only the array is allocated. */
static char **build_env(const char *const env_extra[])
{
    size_t n_ours = 0, n_extra = 0;
    while (environ[n_ours])
        n_ours++;
    while (env_extra && env_extra[n_extra])
        n_extra++;
    char **env = calloc(n_ours + n_extra + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n_ours; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t name_len = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        int replaced = 0;
        for (size_t j = 0; j < n_extra && !replaced; j++)
            replaced = strncmp(env_extra[j], environ[i], name_len) == 0 && env_extra[j][name_len] == '=';
        if (!replaced)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < n_extra; j++)
        env[k++] = (char *)env_extra[j];
    env[k] = NULL;
    return env;
}

/* In the child between fork and exec: only async-signal-safe calls, since
 * the parent may have other threads (librdkafka's) holding locks. */
static void child_exec(pid_t parent, const char *const argv[], char **env, int out_fd, int err_fd, int report_fd)
{
    /* Die with the thread that started us; if it is already gone, stop. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if ((out_fd >= 0 && dup2(out_fd, STDOUT_FILENO) < 0) || (err_fd >= 0 && dup2(err_fd, STDERR_FILENO) < 0)) {
        int e = errno;
        (void)!write(report_fd, &e, sizeof e);
        _exit(127);
    }
    execve(argv[0], (char *const *)argv, env);
    int e = errno;
    (void)!write(report_fd, &e, sizeof e);
    _exit(127);
}

static int open_output(const char *path, char *err, size_t errlen)
{
    if (!path)
        return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return fd;
}

int process_spawn(struct process *p, const char *const argv[], const char *const env_extra[], const char *out_path,
                  const char *err_path, char *err, size_t errlen)
{
    p->pid = 0;
    p->status = -1;
    if (!argv || !argv[0]) {
        snprintf(err, errlen, "no program given");
        return -1;
    }
    int out_fd = open_output(out_path, err, errlen);
    if (out_path && out_fd < 0)
        return -1;
    int err_fd = open_output(err_path, err, errlen);
    if (err_path && err_fd < 0) {
        if (out_fd >= 0)
            close(out_fd);
        return -1;
    }
    /* exec closes this pipe (O_CLOEXEC); a failed exec writes errno to it. */
    int report[2] = {-1, -1};
    char **env = build_env(env_extra);
    int rc = -1;
    if (!env) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (pipe2(report, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto done;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        goto done;
    }
    if (pid == 0)
        child_exec(parent, argv, env, out_fd, err_fd, report[1]);

    close(report[1]);
    report[1] = -1;
    int child_errno = 0;
    ssize_t n;
    while ((n = read(report[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
    }
    if (n > 0) {
        snprintf(err, errlen, "cannot start %s: %s", argv[0], strerror(child_errno));
        waitpid(pid, NULL, 0);
        goto done;
    }
    p->pid = pid;
    rc = 0;
done:
    free(env);
    for (int i = 0; i < 2; i++)
        if (report[i] >= 0)
            close(report[i]);
    if (out_fd >= 0)
        close(out_fd);
    if (err_fd >= 0)
        close(err_fd);
    return rc;
}

int process_signal(struct process *p, int sig)
{
    if (p->pid <= 0)
        return -1;
    return kill(p->pid, sig) == 0 ? 0 : -1;
}

/* Reaps the child if it has exited. Returns 1 when reaped, 0 if running. */
static int try_reap(struct process *p)
{
    int status;
    pid_t r;
    while ((r = waitpid(p->pid, &status, WNOHANG)) < 0 && errno == EINTR) {
    }
    if (r == 0)
        return 0;
    if (r < 0) /* not our child any more: nothing left to wait for */
        p->status = -1;
    else if (WIFEXITED(status))
        p->status = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        p->status = 128 + WTERMSIG(status);
    else
        return 0;
    p->pid = 0;
    return 1;
}

int process_wait(struct process *p, int timeout_ms)
{
    if (p->pid <= 0)
        return 0;
    long long deadline = monotonic_ms() + timeout_ms;
    for (;;) {
        if (try_reap(p))
            return 0;
        if (monotonic_ms() >= deadline)
            return -1;
        sleep_ms(POLL_INTERVAL_MS);
    }
}

int process_stop(struct process *p, int grace_ms)
{
    if (p->pid <= 0)
        return -1;
    kill(p->pid, SIGTERM);
    if (process_wait(p, grace_ms) != 0) {
        kill(p->pid, SIGKILL);
        while (p->pid > 0)
            if (!try_reap(p))
                sleep_ms(POLL_INTERVAL_MS);
    }
    return p->status;
}

int process_wait_file(const char *path, int timeout_ms)
{
    long long deadline = monotonic_ms() + timeout_ms;
    struct stat st;
    while (stat(path, &st) != 0) {
        if (monotonic_ms() >= deadline)
            return -1;
        sleep_ms(POLL_INTERVAL_MS);
    }
    return 0;
}

char *process_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, used = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (used + 1 >= cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + used, cap - used - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            buf = NULL;
            break;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    close(fd);
    if (!buf)
        return NULL;
    buf[used] = '\0';
    if (len)
        *len = used;
    return buf;
}

int process_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t alen = sizeof addr;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && getsockname(fd, (struct sockaddr *)&addr, &alen) == 0)
        port = ntohs(addr.sin_port);
    close(fd);
    return port;
}

int process_path_from_env(char *out, size_t outlen, const char *env_var, const char *name, char *err, size_t errlen)
{
    const char *dir = getenv(env_var);
    if (!dir || !dir[0]) {
        snprintf(err, errlen, "%s is not set (run the tests through tests/run-tests.sh)", env_var);
        return -1;
    }
    int n = snprintf(out, outlen, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= outlen) {
        snprintf(err, errlen, "path under %s is too long", env_var);
        return -1;
    }
    return 0;
}
