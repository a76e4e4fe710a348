/* Test support: start, signal, wait for and kill child processes; wait for
 * a file with a deadline; read a whole file; find a free TCP port. Plain C
 * (no cmocka) so helper programs can link it too. Errors are reported as
 * text into err, never by aborting. */
#ifndef STAGEHAND_PROCESS_H
#define STAGEHAND_PROCESS_H

#include <stddef.h>
#include <sys/types.h>

struct process {
    pid_t pid;  /* 0 when not started or already reaped */
    int status; /* exit code, or 128 + signal number; valid once reaped */
};

/* Starts argv[0] (a path) with argv, the environment plus env_extra
 * ("NAME=value" strings, NULL-terminated, may be NULL; they replace
 * variables of the same name), stdout to out_path and stderr to err_path
 * (created or truncated; NULL keeps ours). The child is killed when the
 * calling thread exits, so a crashed test leaves nothing running.
 * Returns 0, or -1 with err. */
int process_spawn(struct process *p, const char *const argv[], const char *const env_extra[], const char *out_path,
                  const char *err_path, char *err, size_t errlen);

/* Sends sig to a running child. Returns 0, or -1 if it is not running. */
int process_signal(struct process *p, int sig);

/* Waits up to timeout_ms for the child to exit and reaps it. Returns 0 (see
 * p->status), or -1 if it is still running at the deadline. */
int process_wait(struct process *p, int timeout_ms);

/* Sends SIGTERM, waits up to grace_ms, then SIGKILLs and reaps the child.
 * Safe on a process that was never started or has been reaped. Returns the
 * exit status as in p->status, or -1 when there was nothing to stop. */
int process_stop(struct process *p, int grace_ms);

/* Waits up to timeout_ms for path to exist. Returns 0, or -1 at the
 * deadline. */
int process_wait_file(const char *path, int timeout_ms);

/* Reads the whole file into a NUL-terminated malloc'd buffer (*len bytes
 * without the NUL, when len is not NULL). Returns NULL if it cannot. */
char *process_read_file(const char *path, size_t *len);

/* A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
int process_free_port(void);

/* Writes dir/name into out, dir being the environment variable env_var
 * (e.g. STAGEHAND_BUILD). Returns 0, or -1 with err when it is unset or the
 * result does not fit. */
int process_path_from_env(char *out, size_t outlen, const char *env_var, const char *name, char *err, size_t errlen);

#endif
