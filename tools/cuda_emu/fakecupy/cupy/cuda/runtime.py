def getDeviceCount():
    return 1


def deviceSynchronize():
    pass


def getDeviceProperties(device):
    return {"name": b"fastconv CUDA emulator (fake CuPy)", "multiProcessorCount": 1}


def driverGetVersion():
    return 0


def runtimeGetVersion():
    return 0
