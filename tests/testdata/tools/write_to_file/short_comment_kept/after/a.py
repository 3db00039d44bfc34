# Keep existing code paths working
import os
