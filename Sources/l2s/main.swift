import Tensors
print("l2s")
