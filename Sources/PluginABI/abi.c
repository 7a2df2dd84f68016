/* The plugin ABI is the header alone; this file only makes the target a C module. */
#include "strategyd_plugin.h"
