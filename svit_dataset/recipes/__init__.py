"""The SVIT data recipe (paper 4.2, 5.2): informativeness, Yes/No balance, and the recipe configs."""
