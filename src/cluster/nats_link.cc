#include "cluster/nats_link.h"
