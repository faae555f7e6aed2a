"""model.validation"""
