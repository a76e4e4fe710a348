/* The machine's cost of the two things an acknowledged request pays for
 * besides its own work, for the benchmark report (tools/bench/ingress.py):
 * a trivial system call (getppid, averaged over many) and a thread
 * wake-up (two threads passing a token back and forth through eventfds
 * while blocked in read: half a round trip is one wake-up of a sleeping
 * thread, as the ingress's loop is woken by a delivery report). Prints
 * "syscall_ns N" and "wakeup_ns N" (medians of several batches). Built by
 * the bench with cc -O2 -pthread. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define BATCHES 7
#define SYSCALLS 200000
#define ROUND_TRIPS 20000

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, compare);
    return v[n / 2];
}

static int ping_fd, pong_fd;

static int pass(int from, int to)
{
    uint64_t token;
    if (read(from, &token, sizeof token) != sizeof token)
        return -1;
    return write(to, &token, sizeof token) == sizeof token ? 0 : -1;
}

static void *ponger(void *arg)
{
    (void)arg;
    for (int i = 0; i < BATCHES * ROUND_TRIPS; i++)
        if (pass(ping_fd, pong_fd) < 0)
            return NULL;
    return NULL;
}

int main(void)
{
    double syscall_ns[BATCHES], wakeup_ns[BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        int64_t t = now_ns();
        for (int i = 0; i < SYSCALLS; i++)
            (void)getppid();
        syscall_ns[b] = (double)(now_ns() - t) / SYSCALLS;
    }
    ping_fd = eventfd(0, EFD_CLOEXEC);
    pong_fd = eventfd(0, EFD_CLOEXEC);
    pthread_t thread;
    if (ping_fd < 0 || pong_fd < 0 || pthread_create(&thread, NULL, ponger, NULL) != 0) {
        fprintf(stderr, "syscost: cannot start the wake-up test\n");
        return 1;
    }
    for (int b = 0; b < BATCHES; b++) {
        int64_t t = now_ns();
        for (int i = 0; i < ROUND_TRIPS; i++) {
            uint64_t one = 1;
            if (write(ping_fd, &one, sizeof one) != sizeof one || read(pong_fd, &one, sizeof one) != sizeof one) {
                fprintf(stderr, "syscost: eventfd failed\n");
                return 1;
            }
        }
        wakeup_ns[b] = (double)(now_ns() - t) / ROUND_TRIPS / 2;
    }
    pthread_join(thread, NULL);
    printf("syscall_ns %.0f\nwakeup_ns %.0f\n", median(syscall_ns, BATCHES), median(wakeup_ns, BATCHES));
    return 0;
}
