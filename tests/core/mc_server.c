/*
 * mc_server.c: see mc_server.h. memcached runs as a child of the test (as nobody when the
 * test runs as root), its output discarded; a port taken between our choice and its bind
 * makes it exit, and another port is tried.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "mc_server.h"

#define MC_START_ATTEMPTS 5
#define MC_LISTEN_POLLS	  200 /* of 50 ms: up to 10 s for it to listen */

static pid_t mc_pid = -1;
static int mc_port;

/* A free loopback port: bound by the kernel's choice, then released for memcached. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

int mc_server_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	close(fd);
	return -1;
}

static void exec_memcached(const char *port)
{
	int null = open("/dev/null", O_WRONLY);
	dup2(null, 1);
	dup2(null, 2);
	if (geteuid() == 0)
		execlp("memcached", "memcached", "-l", "127.0.0.1", "-p", port, "-U", "0", "-m",
		       "64", "-u", "nobody", (char *)NULL);
	else
		execlp("memcached", "memcached", "-l", "127.0.0.1", "-p", port, "-U", "0", "-m",
		       "64", (char *)NULL);
	_exit(127);
}

int mc_server_start(void)
{
	if (mc_pid > 0)
		return mc_port;
	if (system("command -v memcached >/dev/null 2>&1") != 0)
		return 0;
	for (int attempt = 0; attempt < MC_START_ATTEMPTS; attempt++) {
		int port = free_port();
		char p[16];
		snprintf(p, sizeof(p), "%d", port);
		mc_pid = fork();
		assert_true(mc_pid >= 0);
		if (mc_pid == 0)
			exec_memcached(p);
		for (int i = 0; i < MC_LISTEN_POLLS; i++) {
			int fd = mc_server_connect(port);
			if (fd >= 0) {
				close(fd);
				mc_port = port;
				return port;
			}
			if (waitpid(mc_pid, NULL, WNOHANG) == mc_pid)
				break; /* exited: the port was taken meanwhile, try another */
			usleep(50 * 1000);
		}
		kill(mc_pid, SIGKILL);
		waitpid(mc_pid, NULL, 0);
		mc_pid = -1;
	}
	fail_msg("memcached did not start");
	return 0;
}

void mc_server_stop(void)
{
	if (mc_pid > 0) {
		kill(mc_pid, SIGTERM);
		waitpid(mc_pid, NULL, 0);
		mc_pid = -1;
	}
}
