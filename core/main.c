/*
 * main.c: the mcwarm executable: dispatches to a command.
 */
#include "core.h"

int main(int argc, char **argv)
{
	return mcw_main(argc, argv);
}
