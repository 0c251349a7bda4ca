/*
 * sinks.h: what each sink of the engine needs of a worker's disk buffer for items of
 * item_size_max (engine_sink_need), exposed for the budget tests. The sinks themselves are
 * private to their commands: dump_sink.c, verify.c, stream.c.
 */
#ifndef MCW_SINKS_H
#define MCW_SINKS_H

#include "engine.h"

/* upload: --out s3://, the uploader's part buffers too ("upload parts"). */
void dump_sink_need(enum chunk_write_mode mode, uint64_t item_size_max, bool upload,
		    struct engine_sink_need *need);
void verify_sink_need(uint64_t item_size_max, struct engine_sink_need *need);
void stream_sink_need(uint64_t item_size_max, struct engine_sink_need *need);

#endif
