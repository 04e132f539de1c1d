// <linux/virtio_ring.h> for C++: its legacy helpers (vring_init) convert
// void* implicitly, which C++ refuses; the kernel lets users leave them out.
#pragma once

#ifndef VIRTIO_RING_NO_LEGACY
#define VIRTIO_RING_NO_LEGACY
#endif
#include <linux/virtio_ring.h>
