"""model.training"""
