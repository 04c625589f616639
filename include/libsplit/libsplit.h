// Everything in one include. A firmware app that only talks to a server needs client.h.
#pragma once
#include "libsplit/bundle.h"
#include "libsplit/client.h"
#include "libsplit/codec.h"
#include "libsplit/dynamic.h"
#include "libsplit/log.h"
#include "libsplit/plan.h"
#include "libsplit/preprocess.h"
#include "libsplit/server.h"
#include "libsplit/session.h"
#include "libsplit/status.h"
#include "libsplit/tensor.h"
