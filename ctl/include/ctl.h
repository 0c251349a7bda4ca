/*
 * ctl.h: mcwarm-ctl, the control binary that sequences volumes and runs a warm-up.
 */
#ifndef MCW_CTL_H
#define MCW_CTL_H

/* `mcwarm-ctl COMMAND [options]`; returns the exit code. */
int ctl_main(int argc, char **argv);

#endif
