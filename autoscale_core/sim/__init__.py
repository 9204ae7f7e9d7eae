"""Simulation and evaluation: ego kinematics, reactive agents (IDM), EPDMS scoring, rule planner."""
