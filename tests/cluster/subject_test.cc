#include "cluster/subject.h"
