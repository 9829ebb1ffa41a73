/* Diagnostic for the alarm benchmark (bench_alarm.py --nodelay-shim): an LD_PRELOAD library
 * that sets TCP_NODELAY on every socket the appliance connects or accepts, to show how much
 * of the end-to-end latency is Nagle's algorithm meeting delayed ACKs on the internal bus
 * (the bus client and the embedded broker leave Nagle on). Not used by the appliance itself.
 *
 *   cc -shared -fPIC -O2 -o nodelay_shim.so nodelay_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void no_delay(int fd) {
    int one = 1;
    int saved = errno; /* fails harmlessly on non-TCP sockets */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    errno = saved;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real) real = dlsym(RTLD_NEXT, "connect");
    no_delay(fd);
    return real(fd, addr, len);
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real) real = dlsym(RTLD_NEXT, "accept");
    int c = real(fd, addr, len);
    if (c >= 0) no_delay(c);
    return c;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real) real = dlsym(RTLD_NEXT, "accept4");
    int c = real(fd, addr, len, flags);
    if (c >= 0) no_delay(c);
    return c;
}
