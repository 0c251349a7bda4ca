/*
 * mc_server.h: a real memcached for the unit tests of the pipes (test_mgpipe, test_mspipe):
 * started once per test process on a free loopback port, stopped by the test's teardown.
 */
#ifndef MCW_TEST_MC_SERVER_H
#define MCW_TEST_MC_SERVER_H

/* Starts memcached (once; later calls return the same port): its port, or 0 when memcached
 * is not installed. Fails the test when it is installed but does not start. */
int mc_server_start(void);
/* A blocking connection to 127.0.0.1:port, or -1. */
int mc_server_connect(int port);
/* Stops it, if it runs (a failed assertion can leave it running: call from a teardown). */
void mc_server_stop(void);

#endif
