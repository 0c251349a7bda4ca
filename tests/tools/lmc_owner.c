/*
 * lmc_owner.c: which server the real libmemcached sends each key to. A test tool: the
 * integration tests check mcwarm's ring filters against it, key by key, so the truth
 * comes from the library clients use, not from mcwarm's own ring code.
 *
 *   mcw-lmc-owner KIND HOST:PORT[=WEIGHT]... < keys      one key per line
 *   -> one line per key: the index of the owning server in the list
 *
 * KIND: libmemcached (KETAMA_WEIGHTED + MD5), libmemcached-md5 (KETAMA + MD5),
 * libmemcached-oaat (plain KETAMA), libmemcached-spy (CONSISTENT_KETAMA_SPY + MD5). The
 * hash is set before the servers are added: libmemcached builds its continuum then.
 */
#include <libmemcached/memcached.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: mcw-lmc-owner KIND HOST:PORT[=WEIGHT]... < keys\n");
		return 64;
	}
	const char *kind = argv[1];
	memcached_st *m = memcached_create(NULL);
	if (strcmp(kind, "libmemcached-oaat") != 0)
		memcached_behavior_set(m, MEMCACHED_BEHAVIOR_HASH, MEMCACHED_HASH_MD5);
	if (strcmp(kind, "libmemcached") == 0)
		memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
	else if (strcmp(kind, "libmemcached-spy") == 0)
		memcached_behavior_set(m, MEMCACHED_BEHAVIOR_DISTRIBUTION,
				       MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA_SPY);
	else if (strcmp(kind, "libmemcached-md5") == 0 || strcmp(kind, "libmemcached-oaat") == 0)
		memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA, 1);
	else {
		fprintf(stderr, "mcw-lmc-owner: unknown kind %s\n", kind);
		return 64;
	}
	for (int i = 2; i < argc; i++) {
		char host[256];
		unsigned port = 11211, weight = 1;
		char *colon = strrchr(argv[i], ':');
		char *eq = strchr(argv[i], '=');
		size_t hl = colon ? (size_t)(colon - argv[i])
				  : (eq ? (size_t)(eq - argv[i]) : strlen(argv[i]));
		if (hl >= sizeof(host))
			return 64;
		memcpy(host, argv[i], hl);
		host[hl] = '\0';
		if (colon)
			port = (unsigned)atoi(colon + 1);
		if (eq)
			weight = (unsigned)atoi(eq + 1);
		if (memcached_server_add_with_weight(m, host, (in_port_t)port, weight) !=
		    MEMCACHED_SUCCESS) {
			fprintf(stderr, "mcw-lmc-owner: cannot add %s\n", argv[i]);
			return 64;
		}
	}
	char line[1024];
	while (fgets(line, sizeof(line), stdin) != NULL) {
		size_t n = strcspn(line, "\n");
		printf("%u\n", memcached_generate_hash(m, line, n));
	}
	memcached_free(m);
	return 0;
}
