// Stands in for the CUDA toolkit header when kernels are compiled for the emulated device.
#pragma once
#include "../device/emu_device.h"
