// Filled in by the persistence work (issue 15).
#include "persist/state.h"
