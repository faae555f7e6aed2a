"""model.inference"""
