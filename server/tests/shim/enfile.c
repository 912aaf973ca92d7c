/* Fault injection for server/tests/faults.rs: while the file named by
 * $CORESTREAM_FAULT_ENFILE exists, accept4(2) and openat2(2) fail with ENFILE, as they do
 * when the system-wide file table (fs.file-max) is full. The real condition needs a global
 * kernel setting that tests never change; this reproduces what the process sees.
 *
 * The server opens media with openat2 through syscall(2) (there is no glibc wrapper), so
 * syscall() is interposed too. Everything else is forwarded unchanged. Built by the test
 * with `cc -shared -fPIC` and loaded with LD_PRELOAD. Hand-written: no crate or package
 * injects errno into a running process's libc calls.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

static int storm(void)
{
    const char *flag = getenv("CORESTREAM_FAULT_ENFILE");
    struct stat st;
    return flag != NULL && stat(flag, &st) == 0;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (real == NULL)
        real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    if (storm()) {
        errno = ENFILE;
        return -1;
    }
    return real(fd, addr, len, flags);
}

long syscall(long number, ...)
{
    static long (*real)(long, ...);
    long a[6];
    va_list ap;
    int i;
    va_start(ap, number);
    /* syscall(2) takes at most six arguments; reading unused ones is harmless on x86-64
     * and aarch64 (they come from the register save area). */
    for (i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (real == NULL)
        real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    if (number == SYS_openat2 && storm()) {
        errno = ENFILE;
        return -1;
    }
    return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
