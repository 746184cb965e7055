#include "cluster/nats_protocol.h"
